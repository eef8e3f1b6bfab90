-- Check and reserve every limit of a request atomically, in one round trip.
-- Fixed windows on Redis's own clock, so all gateway replicas agree on window edges.
-- ARGV: n, then n groups of (counter base name, window seconds, limit, cost, lease). The cost must fit;
-- window 0 is the calendar month (UTC; month.lua is prepended to this script), for monthly budgets.
-- on top of it up to ``lease`` more is taken for the gateway process to spend locally (quotas.plan), as much
-- as the limit still allows.
-- Returns {1, 0, 0, window_id_1, remaining_1, reset_ms_1, leased_1, ...} when reserved (integers only: the
-- gateway names counters as base .. ':' .. window_id itself), or
--         {0, i, retry_after_ms} when limit i (1-based) would be exceeded; nothing is counted then.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local keys, windows, used, resets, leased, adds = {}, {}, {}, {}, {}, {}
for i = 1, n do
  local base = ARGV[2 + (i - 1) * 5]
  local window = tonumber(ARGV[3 + (i - 1) * 5])
  local limit = tonumber(ARGV[4 + (i - 1) * 5])
  local cost = tonumber(ARGV[5 + (i - 1) * 5])
  local lease = tonumber(ARGV[6 + (i - 1) * 5])
  local window_id, reset
  if window == 0 then
    window_id, reset = calendar_month(now)
  else
    window_id = math.floor(now / window)
    reset = (window_id + 1) * window - now
  end
  local key = base .. ':' .. window_id
  local current = tonumber(redis.call('GET', key) or '0')
  if current + cost > limit then
    return {0, i, math.ceil(reset * 1000)}
  end
  keys[i], windows[i], resets[i] = key, window_id, reset
  leased[i] = math.max(0, math.min(lease, limit - current - cost))
  adds[i] = cost + leased[i]
  used[i] = current + adds[i]
end
local result = {1, 0, 0}
for i = 1, n do
  local window = tonumber(ARGV[3 + (i - 1) * 5])
  local limit = tonumber(ARGV[4 + (i - 1) * 5])
  redis.call('INCRBY', keys[i], adds[i])
  -- Kept a little past its window so a late reconciliation still finds it.
  redis.call('EXPIRE', keys[i], (window == 0 and math.ceil(resets[i]) or window) + 120)
  table.insert(result, windows[i])
  table.insert(result, limit - used[i])
  table.insert(result, math.ceil(resets[i] * 1000))
  table.insert(result, leased[i])
end
return result
