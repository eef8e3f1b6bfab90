from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.requestlog.feedback_sink import FeedbackSink
from llmops_gateway.requestlog.sinks import JsonlFileSink, NullSink, RequestLogSink
from llmops_gateway.settings import GatewaySettings, RequestLogSinkKind


def make_sink(settings: GatewaySettings, metrics: GatewayMetrics) -> RequestLogSink:
    match settings.request_log_sink:
        case RequestLogSinkKind.feedback:
            return FeedbackSink(
                url=settings.feedback_url,
                token=settings.feedback_token,
                spool_dir=settings.spool_dir,
                metrics=metrics,
                queue_size=settings.request_log_queue_size,
            )
        case RequestLogSinkKind.jsonl:
            return JsonlFileSink(settings.request_log_path, queue_size=settings.request_log_queue_size)
        case RequestLogSinkKind.none:
            return NullSink()
