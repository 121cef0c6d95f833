-- wrk script for bench/ingest.py: post pre-signed pipeline events, count answers by status.
--
--   wrk -t1 -c16 -d10s -s bench/ingest.lua URL -- REQUESTS_FILE
--
-- Signatures are HMACs over each body and its webhook-id, which plain Lua cannot compute
-- fast enough, so bench/ingest.py signs every request beforehand. REQUESTS_FILE holds,
-- per request, a header line "<webhook-id> <webhook-timestamp> <webhook-signature> <body bytes>"
-- followed by the body.

local requests = {}
local next_request = 1
local threads = {}
-- Globals, so that done() can read each thread's through thread:get().
wrapped = 0
statuses = {}

function setup(thread)
   threads[#threads + 1] = thread
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
end

function request()
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
end

function done(summary, latency, requests)
   local counts = {}
   local total_wrapped = 0
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + count
      end
      total_wrapped = total_wrapped + thread:get("wrapped")
   end
   local parts = {}
   for status, count in pairs(counts) do
      parts[#parts + 1] = string.format('"%d": %d', status, count)
   end
   local errors = summary.errors
   io.write(string.format(
      'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
         .. '"socket_errors": %d, "timeouts": %d, "wrapped": %d, "statuses": {%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
      errors.connect + errors.read + errors.write, errors.timeout, total_wrapped, table.concat(parts, ", ")
   ))
end
