-- wrk script for `make bench`: POST /v1/payments with realistic bodies, each request with a
-- fresh Idempotency-Key, so every request is a new payment (never a cheap replay).
--
-- Driven by environment variables (wrk passes no arguments to setup/done):
--   BENCH_POOL        file of "<api key>\t<json body>" lines, cycled through in order
--   BENCH_KEY_PREFIX  prefix of every Idempotency-Key; keys are "<prefix>-<thread>-<n>"
--   BENCH_OUT         where done() writes its summary ("name value" lines, see below)
--
-- Requests are built once per pool line in init() and only the key is spliced in per request,
-- so the load generator spends as little CPU as possible.  response() counts statuses and keeps
-- the payment id of every 2xx answer, so the bench knows exactly which payments were accepted;
-- the echo baseline runs the same script, so both pay the same client-side cost.

local KEY_PLACEHOLDER = "@@IDEMPOTENCY_KEY@@"

-- Main state: the threads, so done() can read their counters.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

-- Thread state.  Globals on purpose: done() reads them with thread:get().
issued = 0
statuses = {}
accepted = {}

local heads, tails = {}, {}
local pool_size = 0
local key_prefix = ""

function init(args)
   key_prefix = os.getenv("BENCH_KEY_PREFIX") .. "-" .. thread_no .. "-"
   for line in io.lines(os.getenv("BENCH_POOL")) do
      local api_key, body = line:match("^([^\t]+)\t(.+)$")
      local headers = {
         ["Authorization"] = "Bearer " .. api_key,
         ["Content-Type"] = "application/json",
         ["Idempotency-Key"] = KEY_PLACEHOLDER,
      }
      local raw = wrk.format("POST", nil, headers, body)
      local first, last = raw:find(KEY_PLACEHOLDER, 1, true)
      pool_size = pool_size + 1
      heads[pool_size] = raw:sub(1, first - 1)
      tails[pool_size] = raw:sub(last + 1)
   end
end

function request()
   issued = issued + 1
   local i = (issued - 1) % pool_size + 1
   return heads[i] .. key_prefix .. issued .. tails[i]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status < 300 then
      local payment_id = body:match('"id":"(pay_%w+)"')
      if payment_id then
         accepted[#accepted + 1] = payment_id
      end
   end
end

function done(summary, latency, requests)
   local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
   local function put(name, value)
      out:write(name, " ", string.format("%d", value), "\n")
   end
   put("requests", summary.requests)
   put("duration_us", summary.duration)
   put("errors_connect", summary.errors.connect)
   put("errors_read", summary.errors.read)
   put("errors_write", summary.errors.write)
   put("errors_timeout", summary.errors.timeout)
   put("latency_us_p50", latency:percentile(50))
   put("latency_us_p90", latency:percentile(90))
   put("latency_us_p99", latency:percentile(99))
   put("latency_us_max", latency.max)
   for _, thread in ipairs(threads) do
      put("issued", thread:get("issued"))
      for status, count in pairs(thread:get("statuses")) do
         out:write("status ", string.format("%d %d", status, count), "\n")
      end
      for _, payment_id in ipairs(thread:get("accepted")) do
         out:write("accepted ", payment_id, "\n")
      end
   end
   out:close()
end
