-- wrk script for bench/ingest.py: post pre-signed pipeline events, count answers by status.
--
--   wrk -t1 -c16 -d10s -s bench/ingest.lua URL -- REQUESTS_FILE [RATE]
--
-- Signatures are HMACs over each body and its webhook-id, which plain Lua cannot compute
-- fast enough, so bench/ingest.py signs every request beforehand. REQUESTS_FILE holds,
-- per request, a header line "<webhook-id> <webhook-timestamp> <webhook-signature> <body bytes>"
-- followed by the body.
--
-- With RATE, the requests leave at RATE per second, each at its own slot whatever the answers
-- before it (as long as a connection is free), each once; and every acknowledgement is
-- reported, with the event id the server gave it and the wall-clock time it arrived.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
]])
local CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
local timespec = ffi.new("bench_timespec")

local function seconds(clock)
   ffi.C.clock_gettime(clock, timespec)
   return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

local requests = {}
local next_request = 1
local threads = {}
local rate, start
local slots = 0
-- Globals, so that done() can read each thread's through thread:get().
wrapped = 0
-- CLOCK_MONOTONIC when the first request left: wrk's duration starts after init has read the
-- requests file, which takes a few tenths of a second that no server works in.
first_sent = nil
statuses = {}
acked_ids = {}
acked_at = {}

function setup(thread)
   threads[#threads + 1] = thread
end

local function paced_delay()
   -- Milliseconds until this connection's next request is due; once every request has had its
   -- slot, long enough to outlast the run.
   start = start or seconds(CLOCK_MONOTONIC)
   if slots >= #requests then
      return 3600 * 1000
   end
   local due = start + slots / rate
   slots = slots + 1
   return math.max(0, math.floor((due - seconds(CLOCK_MONOTONIC)) * 1000 + 0.5))
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   while true do
      local line = file:read("*l")
      if not line then break end
      local id, timestamp, signature, length = line:match("^(%S+) (%S+) (%S+) (%d+)$")
      local body = file:read(tonumber(length))
      local headers = {
         ["Content-Type"] = "application/json",
         ["webhook-id"] = id,
         ["webhook-timestamp"] = timestamp,
         ["webhook-signature"] = signature,
      }
      requests[#requests + 1] = wrk.format("POST", nil, headers, body)
   end
   file:close()
   if args[2] then
      rate = tonumber(args[2])
      -- wrk asks each connection for a delay before each request once delay() exists.
      delay = paced_delay
   end
end

function request()
   first_sent = first_sent or seconds(CLOCK_MONOTONIC)
   local r = requests[next_request]
   next_request = next_request + 1
   if next_request > #requests then
      -- Sent again, a request is a duplicate (200): bench/ingest.py reports it as too few requests.
      next_request = 1
      wrapped = wrapped + 1
   end
   return r
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if rate and status == 202 then
      acked_ids[#acked_ids + 1] = tonumber(body:match('"event_id":(%d+)'))
      acked_at[#acked_at + 1] = seconds(CLOCK_REALTIME)
   end
end

function done(summary, latency, requests)
   local counts = {}
   local total_wrapped = 0
   local started = math.huge
   for _, thread in ipairs(threads) do
      started = math.min(started, thread:get("first_sent") or math.huge)
      for status, count in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + count
      end
      total_wrapped = total_wrapped + thread:get("wrapped")
      local ids, times = thread:get("acked_ids"), thread:get("acked_at")
      for index, event_id in ipairs(ids) do
         io.write(string.format("ACKED %d %.6f\n", event_id, times[index]))
      end
   end
   local parts = {}
   for status, count in pairs(counts) do
      parts[#parts + 1] = string.format('"%d": %d', status, count)
   end
   local errors = summary.errors
   io.write(string.format(
      'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
         .. '"socket_errors": %d, "timeouts": %d, "wrapped": %d, "first_sent": %.6f, "statuses": {%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
      errors.connect + errors.read + errors.write, errors.timeout, total_wrapped,
      started == math.huge and -1 or started, table.concat(parts, ", ")
   ))
end
