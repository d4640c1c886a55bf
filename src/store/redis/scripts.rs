//! The Lua scripts of the code ledger. Each is one rule in one round trip, atomic across instances;
//! every key a script touches is one of its KEYS, so they run on Cluster too. The memory twin
//! (`store/memory/ledger.rs`) runs the same rules; `tests/api/store_model.rs` compares the two.

use std::sync::LazyLock;

use redis::Script;

/// The numbers the ledger scripts answer with, by name: the one table that the scripts' text (as
/// Lua locals of the same names, see [`LUA_ANSWERS`]) and their decoding (`ledger.rs`) both read.
pub(super) mod answer {
    // A verification's verdict: the first value of its answer.
    pub const MISSING: i64 = 0;
    pub const ACCEPTED: i64 = 1;
    pub const WRONG: i64 = 2;
    pub const EXHAUSTED: i64 = 3;
    pub const LOCKED: i64 = 4;
    pub const REPEAT: i64 = 5;
    pub const REPLAYED: i64 = 6;
    pub const UNKNOWN: i64 = 7;
    pub const AUTHENTICATOR: i64 = 8;
    pub const UNREADABLE: i64 = 9;
    // The lock beside it: the second value.
    pub const NO_LOCK: i64 = 0;
    pub const LOCKED_NOW: i64 = 1;
    pub const LOCKED_FOR_DESK: i64 = 2;
    pub const HELD_FOR_DESK: i64 = 3;
    // What the first step of a send found.
    pub const SEND_UNKNOWN: i64 = 0;
    pub const SEND_NOT_VERIFIED: i64 = 1;
    pub const SEND_NOT_OFFERED: i64 = 2;
    pub const SEND_LOCKED: i64 = 3;
    pub const SEND_LINE_LOCKED: i64 = 4;
    pub const SEND_AUTHENTICATOR: i64 = 5;
    pub const SEND_CHECKED: i64 = 6;
    pub const SEND_LIMITED: i64 = 7;
    pub const SEND_RESERVED: i64 = 8;
    pub const SEND_UNREADABLE: i64 = 9;
    pub const SEND_DESK_LOCKED: i64 = 10;

    /// Every name with its number, for the scripts' locals.
    pub const ALL: [(&str, i64); 25] = [
        ("MISSING", MISSING),
        ("ACCEPTED", ACCEPTED),
        ("WRONG", WRONG),
        ("EXHAUSTED", EXHAUSTED),
        ("LOCKED", LOCKED),
        ("REPEAT", REPEAT),
        ("REPLAYED", REPLAYED),
        ("UNKNOWN", UNKNOWN),
        ("AUTHENTICATOR", AUTHENTICATOR),
        ("UNREADABLE", UNREADABLE),
        ("NO_LOCK", NO_LOCK),
        ("LOCKED_NOW", LOCKED_NOW),
        ("LOCKED_FOR_DESK", LOCKED_FOR_DESK),
        ("HELD_FOR_DESK", HELD_FOR_DESK),
        ("SEND_UNKNOWN", SEND_UNKNOWN),
        ("SEND_NOT_VERIFIED", SEND_NOT_VERIFIED),
        ("SEND_NOT_OFFERED", SEND_NOT_OFFERED),
        ("SEND_LOCKED", SEND_LOCKED),
        ("SEND_LINE_LOCKED", SEND_LINE_LOCKED),
        ("SEND_AUTHENTICATOR", SEND_AUTHENTICATOR),
        ("SEND_CHECKED", SEND_CHECKED),
        ("SEND_LIMITED", SEND_LIMITED),
        ("SEND_RESERVED", SEND_RESERVED),
        ("SEND_UNREADABLE", SEND_UNREADABLE),
        ("SEND_DESK_LOCKED", SEND_DESK_LOCKED),
    ];
}

/// The answer table as Lua locals, put at the head of each script that answers with it.
static LUA_ANSWERS: LazyLock<String> = LazyLock::new(|| {
    let (names, numbers): (Vec<&str>, Vec<String>) = answer::ALL
        .iter()
        .map(|(name, n)| (*name, n.to_string()))
        .unzip();
    format!("local {} = {}\n", names.join(", "), numbers.join(", "))
});

pub(super) static DISCARD_CODE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HGET', KEYS[1], 'd') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0",
    )
});

/// What both a check and a send read of the customer record (`rec`, as read, or false when there
/// is none), or of the customer as given (`known`, written `<email><phone><authenticator>:<rev>[,<rev>…]`
/// with 1/0 flags, current revision first) when the customer was looked up elsewhere. Answers
/// nothing when there is no record, false when it is unreadable, else: the record as read ('' when
/// known), whether it has an email, a phone and an authenticator, the contacts' current revision
/// (which a new code carries), and when known the list of every revision a pending code may carry.
/// Several values, not a table: each table is an allocation the script's garbage collector then
/// walks, and this runs on every check and send.
const RECORD: &str = r"local function record(rec, known)
  if known ~= '' then
    local e, s, a, list = string.match(known, '^(%d)(%d)(%d):(.*)$')
    return '', e == '1', s == '1', a == '1', string.match(list, '[^,]+') or '', list
  end
  if not rec then return nil end
  -- cjson decodes an array to a table too; a record is an object.
  if string.byte(rec) ~= 123 then return false end
  local ok, c = pcall(cjson.decode, rec)
  if not ok or type(c) ~= 'table' then return false end
  local null, e, s, a, rev = cjson.null, c.email, c.phone, c.totp_sealed, c.rev
  if rev == nil or rev == null then rev = '' end
  return rec, e ~= nil and e ~= null and e ~= '', s ~= nil and s ~= null and s ~= '',
    a ~= nil and a ~= null and a ~= '', rev
end
";

/// Counts a send and, within the limit, writes its code and remembers its method: -1 when the
/// window's sends are used up (the count taken back), else the send's number.
/// The send count keeps its `PTTL` repair (unlike the check's failure count): a send is far rarer
/// than a check, so the extra call costs nothing that shows.
const RESERVE: &str = r"local function reserve(sends, code, choice, max, window, digest, method, rev, ttl)
  local n = redis.call('INCR', sends)
  if n == 1 or redis.call('PTTL', sends) < 0 then redis.call('PEXPIRE', sends, window) end
  if n > tonumber(max) then
    redis.call('DECR', sends)
    return -1
  end
  redis.call('DEL', code)
  redis.call('HSET', code, 'd', digest, 'm', method, 'a', 0, 'r', rev)
  redis.call('PEXPIRE', code, ttl)
  redis.call('SET', choice, method, 'PX', ttl)
  return n
end
";

/// The judging both verification scripts share, up to their own verdict. Each script first sets
/// `chosen` (the method), `digests` (the index in ARGV of the code's first digest; the rest
/// follow), and `accepted`, `locked`, `failures` and `streak` (the values of KEYS[3], KEYS[1],
/// KEYS[2] and KEYS[6], read with the script's other reads in one MGET: each call out of Lua costs
/// Redis about as much as the key lookup itself). KEYS: lock, failures, accepted, choice, code,
/// streak. ARGV: max, window ms, lock ms, grace ms, judge (1/0), discard the code on lock (1/0),
/// failures in a row that lock for the desk. Sets `n` (this failure's number) and `max`. Answers
/// {kind, lock, method, record}, named in [`answer`]: the verdict (or `UNKNOWN`, `AUTHENTICATOR`
/// with the record, `UNREADABLE`), and `NO_LOCK`, `LOCKED_NOW`, `LOCKED_FOR_DESK` (locked now
/// until the desk unlocks) or `HELD_FOR_DESK` (with `LOCKED`: a lock only the desk lifts). The digests are keyed HMACs, so comparing them with `==` reveals
/// nothing an attacker can steer. No closures but `accept`: each is an allocation per call.
const VERIFY_PRELUDE: &str = r"if accepted then
  for i = digests, #ARGV do
    if accepted == ARGV[i] then return {REPEAT, NO_LOCK, chosen, ''} end
  end
end
if ARGV[5] ~= '1' then return {MISSING, NO_LOCK, chosen, ''} end
if locked then
  if locked == 'desk' then return {LOCKED, HELD_FOR_DESK, chosen, ''} end
  return {LOCKED, NO_LOCK, chosen, ''}
end
-- The count is only ever made with its expiry (SET PX), which INCR keeps. One given no expiry
-- by hand is not repaired here (checking costs a call per check); an unlock deletes it.
local n = 1
if failures then
  n = redis.call('INCR', KEYS[2])
else
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
end
local max = tonumber(ARGV[1])
local function accept(digest)
  redis.call('DEL', KEYS[2], KEYS[4], KEYS[6])
  if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[3], digest, 'PX', ARGV[4]) end
end
";

/// How both verification scripts end, once their own part has set `kind` (the verdict, as
/// `VERIFY_PRELUDE` numbers them): a judged failure adds to the streak, and the one that reaches
/// `ARGV[7]` locks with no expiry (`desk`); otherwise the failure that reaches the window's limit
/// locks for the lock's duration. The streak has no expiry either: waiting out locks never resets it.
const VERIFY_VERDICT: &str = r"if kind ~= LOCKED then
  local s = (tonumber(streak) or 0) + 1
  if s >= tonumber(ARGV[7]) then
    redis.call('SET', KEYS[1], 'desk')
    redis.call('DEL', KEYS[2], KEYS[6])
    if ARGV[6] == '1' then redis.call('DEL', KEYS[5]) end
    return {kind, LOCKED_FOR_DESK, chosen, ''}
  end
  redis.call('SET', KEYS[6], s)
end
if n >= max then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  if ARGV[6] == '1' then redis.call('DEL', KEYS[5]) end
  return {kind, LOCKED_NOW, chosen, ''}
end
return {kind, NO_LOCK, chosen, ''}";

/// A whole check of a code (see `Ledger::check_code`). KEYS as the prelude's, then the record.
/// ARGV as the prelude's, then: 8 wrong tries one code survives, 9 the named method (or ''), 10 the
/// offered channels ('e', 's'), 11 the customer as known (or '': read the record), 12 how many
/// email digests follow from 13, then the SMS digests.
pub(super) static CHECK_CODE: LazyLock<Script> = LazyLock::new(|| {
    let answers = LUA_ANSWERS.as_str();
    Script::new(&format!(
        r"{answers}{RECORD}
local got = redis.call('MGET', KEYS[7], KEYS[4], KEYS[3], KEYS[1], KEYS[2], KEYS[6])
local rec, email, phone, totp, rev, revs = record(got[1], ARGV[11])
if rec == nil then return {{UNKNOWN, NO_LOCK, '', ''}} end
if not rec then return {{UNREADABLE, NO_LOCK, '', ''}} end
local code = redis.call('HMGET', KEYS[5], 'd', 'r', 'm')
local chosen = ARGV[9]
if chosen == '' then
  local remembered = got[2] or code[3]
  if remembered then
    if remembered == 'email' or remembered == 'sms' or remembered == 'authenticator' then
      chosen = remembered
    end
  elseif totp then
    chosen = 'authenticator'
  else
    local e = email and string.find(ARGV[10], 'e', 1, true)
    local s = phone and string.find(ARGV[10], 's', 1, true)
    if e and not s then chosen = 'email' elseif s and not e then chosen = 'sms' end
  end
end
if chosen == 'authenticator' then
  -- A retry of the sent code just accepted in this call: the success forgot the choice that sent
  -- it, so without this the customer's authenticator would be judged instead.
  if got[3] then
    local k = tonumber(ARGV[12])
    for i = 13, #ARGV do
      if got[3] == ARGV[i] then
        if i <= 12 + k then return {{REPEAT, NO_LOCK, 'email', ''}} end
        return {{REPEAT, NO_LOCK, 'sms', ''}}
      end
    end
  end
  return {{AUTHENTICATOR, NO_LOCK, chosen, rec}}
end
local digests, accepted, locked, failures, streak = 13, got[3], got[4], got[5], got[6]
{VERIFY_PRELUDE}
local d, r = code[1], code[2] or ''
-- Whether the pending code went to the contacts as they are now.
local current = r == rev
if revs then
  current = r ~= '' and not string.find(r, ',', 1, true)
    and string.find(',' .. revs .. ',', ',' .. r .. ',', 1, true) ~= nil
end
local kind
if n > max then
  kind = LOCKED
elseif not d then
  kind = MISSING
elseif not current then
  redis.call('DEL', KEYS[5])
  kind = MISSING
else
  local k = tonumber(ARGV[12])
  local first, last = 13, 12 + k
  if chosen == 'sms' then first, last = 13 + k, #ARGV end
  for i = first, last do
    if d == ARGV[i] then
      redis.call('DEL', KEYS[5])
      accept(d)
      return {{ACCEPTED, NO_LOCK, chosen, ''}}
    end
  end
  if redis.call('HINCRBY', KEYS[5], 'a', 1) >= tonumber(ARGV[8]) then
    redis.call('DEL', KEYS[5])
    kind = EXHAUSTED
  else
    kind = WRONG
  end
end
{VERIFY_VERDICT}"
    ))
});

/// An authenticator code: KEYS as the prelude's, then the last accepted step; ARGV as the
/// prelude's, then 8 the matched step (-1 none), 9 the step record's life in ms, then the digests.
pub(super) static VERIFY_TOTP: LazyLock<Script> = LazyLock::new(|| {
    let answers = LUA_ANSWERS.as_str();
    Script::new(&format!(
        r"{answers}local chosen = 'authenticator'
local got = redis.call('MGET', KEYS[3], KEYS[1], KEYS[2], KEYS[6])
local digests, accepted, locked, failures, streak = 10, got[1], got[2], got[3], got[4]
{VERIFY_PRELUDE}
local kind
local step = tonumber(ARGV[8])
if n > max then
  kind = LOCKED
elseif step < 0 then
  kind = WRONG
else
  local last = tonumber(redis.call('GET', KEYS[7]) or '-1')
  if last and step <= last then
    kind = REPLAYED
  else
    redis.call('SET', KEYS[7], ARGV[8], 'PX', ARGV[9])
    accept(ARGV[10])
    return {{ACCEPTED, NO_LOCK, chosen, ''}}
  end
end
{VERIFY_VERDICT}"
    ))
});

/// The first step of a send (see `Ledger::start_send`). KEYS: record, lock, choice, code, sends.
/// ARGV: method, offered (1/0), line locked (1/0), reserve (1/0), max sends, window ms, digest,
/// ttl ms, the customer as known (or '': read the record). Answers {kind, record}, the kinds named
/// `SEND_…` in [`answer`].
pub(super) static START_SEND: LazyLock<Script> = LazyLock::new(|| {
    let answers = LUA_ANSWERS.as_str();
    Script::new(&format!(
        r"{answers}{RECORD}{RESERVE}
local rec, email, phone, totp, rev = record(redis.call('GET', KEYS[1]), ARGV[9])
if rec == nil then return {{SEND_UNKNOWN, ''}} end
if not rec then return {{SEND_UNREADABLE, ''}} end
local m = ARGV[1]
local has = (m == 'email' and email) or (m == 'sms' and phone) or (m == 'authenticator' and totp)
if not has then return {{SEND_NOT_VERIFIED, ''}} end
if ARGV[2] ~= '1' then return {{SEND_NOT_OFFERED, ''}} end
local lock = redis.call('GET', KEYS[2])
if lock == 'desk' then return {{SEND_DESK_LOCKED, ''}} end
if lock then return {{SEND_LOCKED, ''}} end
if ARGV[3] == '1' then return {{SEND_LINE_LOCKED, ''}} end
if m == 'authenticator' then
  redis.call('SET', KEYS[3], m, 'PX', ARGV[8])
  return {{SEND_AUTHENTICATOR, ''}}
end
if ARGV[4] ~= '1' then return {{SEND_CHECKED, rec}} end
if reserve(KEYS[5], KEYS[4], KEYS[3], ARGV[5], ARGV[6], ARGV[7], m, rev, ARGV[8]) < 0 then
  return {{SEND_LIMITED, ''}}
end
return {{SEND_RESERVED, rec}}"
    ))
});

/// KEYS: sends, code, choice. ARGV: max, window ms, digest, method, contacts revision, ttl ms.
pub(super) static RESERVE_SEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{RESERVE}
return reserve(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])"
    ))
});

/// KEYS: lock, count. ARGV: max, window ms. -1 locked, -2 full (nothing counted), else the count.
pub(super) static CLAIM_CAPPED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local n = redis.call('INCR', KEYS[2])
if n == 1 or redis.call('PTTL', KEYS[2]) < 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[2])
  return -2
end
return n",
    )
});
