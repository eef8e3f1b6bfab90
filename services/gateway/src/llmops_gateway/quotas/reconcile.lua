-- Correct reserved token counters by the difference between real usage and the reservations.
-- KEYS: counters; ARGV[i]: the summed correction for KEYS[i] (may be negative). A counter that already
-- expired is left alone rather than recreated without a TTL.
-- A counter never goes below zero: after Redis restarts empty, a reservation made before the restart is still
-- corrected against the counter of the same name that requests made since have started; subtracting all of it
-- would leave a negative count, which admits that many tokens beyond the limit. At zero the correction stops
-- (the restart forgot more than that anyway).
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[i]) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  end
end
return #KEYS
