//! The Lua scripts the Redis store runs: each one is atomic, so a write and its entry in the
//! change stream land together or not at all.

/// Writes a batch if the lease still holds our token, appending each change to the stream
/// with the next number of the stream's counter (`s`: a reader that sees a number skipped
/// missed entries). KEYS: lease, tickets, matches, changes, counter. ARGV: token, origin, stream length, idempotency key
/// prefix, then (op, id, stored JSON, change JSON) quadruples: `T` ticket, `F` forget (which
/// also frees the ticket's idempotency key), `M` match, `D` match done.
/// Returns 1 when written, 0 when another token holds the lease, 2 when none does (it lapsed
/// while Redis was unreachable, or Redis lost its data; the keeper takes it back).
pub const WRITE: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then return 2 end
if held ~= ARGV[1] then return 0 end
for i = 5, #ARGV, 4 do
  local op, id = ARGV[i], ARGV[i + 1]
  if op == 'T' then redis.call('HSET', KEYS[2], id, ARGV[i + 2])
  elseif op == 'F' then
    local raw = redis.call('HGET', KEYS[2], id)
    if raw then
      local ok, stored = pcall(cjson.decode, raw)
      local key = ok and type(stored) == 'table' and type(stored.ticket) == 'table' and stored.ticket.idempotencyKey
      if type(key) == 'string' then
        local idem = ARGV[4] .. key
        if redis.call('GET', idem) == id then redis.call('DEL', idem) end
      end
    end
    redis.call('HDEL', KEYS[2], id)
  elseif op == 'M' then redis.call('HSET', KEYS[3], id, ARGV[i + 2])
  else redis.call('HDEL', KEYS[3], id) end
  local n = redis.call('INCR', KEYS[5])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'o', ARGV[2], 's', n, 'c', ARGV[i + 3])
end
return 1
";

/// Creates a searching ticket from any replica (not fenced: creation needs no lease). With an
/// idempotency key (KEYS[4]), takes it first; a key already taken writes nothing and returns
/// the ticket it names. The stream entry's field is `n` (new), which even the creating replica
/// reads back: a state rebuilt from the hashes meanwhile may not have it yet. KEYS: tickets,
/// changes, counter[, idempotency key]. ARGV: id, stored JSON,
/// change JSON, origin, stream length. Returns the id of the ticket the request stands for.
pub const CREATE: &str = r"
if KEYS[4] then
  if not redis.call('SET', KEYS[4], ARGV[1], 'NX') then return redis.call('GET', KEYS[4]) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local n = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'o', ARGV[4], 's', n, 'n', ARGV[3])
return ARGV[1]
";

/// Asks the replica that matches to cancel a ticket: an entry `x` in the stream. KEYS:
/// changes, counter. ARGV: origin, ticket id, stream length.
pub const CANCEL: &str = r"
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'o', ARGV[1], 's', n, 'x', ARGV[2])
return n
";

/// Renews the lease while it holds our token. Where it lapsed (Redis was unreachable for
/// longer than its TTL) and nobody took it since (the counter is still ours, or Redis lost
/// every key), takes it back. KEYS: lease, fence. ARGV: token, fence number, TTL in ms.
pub const RENEW: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if held then return 0 end
local fence = redis.call('GET', KEYS[2])
if fence and fence ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 2
";

/// Gives the lease up if it still holds our token. KEYS: lease. ARGV: token.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";
