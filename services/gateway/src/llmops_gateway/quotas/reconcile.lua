-- Correct reserved token counters by the difference between real usage and the reservation.
-- KEYS: counters from a reservation; ARGV[1]: delta (may be negative). A counter that already
-- expired is left alone rather than recreated without a TTL.
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[1])
  end
end
return #KEYS
