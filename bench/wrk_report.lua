-- wrk script used by bench/wrk.py: counts responses outside 2xx (wrk itself
-- only counts status >= 400) and prints a machine-readable block after wrk's
-- own report, with the percentiles wrk --latency does not print (p95).
-- Each wrk thread has its own Lua state: setup() keeps a handle on every
-- thread so that done() can add their counters up.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   non2xx = 0
   responses = 0
end

function response(status, headers, body)
   responses = responses + 1
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function done(summary, latency, requests)
   local non2xx_total = 0
   local responses_total = 0
   for _, thread in ipairs(threads) do
      non2xx_total = non2xx_total + thread:get("non2xx")
      responses_total = responses_total + thread:get("responses")
   end
   io.write("--- stacktune-bench ---\n")
   io.write(string.format("duration_us %d\n", summary.duration))
   io.write(string.format("requests %d\n", summary.requests))
   io.write(string.format("responses %d\n", responses_total))
   io.write(string.format("bytes %d\n", summary.bytes))
   io.write(string.format("non2xx %d\n", non2xx_total))
   io.write(string.format("errors_connect %d\n", summary.errors.connect))
   io.write(string.format("errors_read %d\n", summary.errors.read))
   io.write(string.format("errors_write %d\n", summary.errors.write))
   io.write(string.format("errors_status %d\n", summary.errors.status))
   io.write(string.format("errors_timeout %d\n", summary.errors.timeout))
   io.write(string.format("latency_mean_us %.1f\n", latency.mean))
   io.write(string.format("latency_stdev_us %.1f\n", latency.stdev))
   io.write(string.format("latency_max_us %d\n", latency.max))
   for _, p in ipairs({50, 75, 90, 95, 99, 99.9}) do
      io.write(string.format("p%s_us %d\n", p, latency:percentile(p)))
   end
   io.write("--- end ---\n")
end
