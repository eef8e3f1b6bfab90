-- Correct reserved token counters by the difference between real usage and the reservations.
-- KEYS: counters; ARGV[i]: the summed correction for KEYS[i] (may be negative). A counter that already
-- expired is left alone rather than recreated without a TTL.
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  end
end
return #KEYS
