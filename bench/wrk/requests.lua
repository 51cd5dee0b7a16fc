-- Sends the requests listed in $BENCH_REQUESTS (one per line: METHOD <tab> PATH <tab> BODY),
-- each thread its own share, in order. With $BENCH_REPEAT=1 the list is sent over and over
-- (a one-line file for a case that repeats one request); otherwise each line is meant to be
-- sent once, and a list that runs out is counted in "exhausted" (the harness reports it).
-- Prints one line "BENCH_JSON {...}" with the figures the harness reads.

local threads = {}
local prepared = {}
local position = 0
exhausted = 0
statuses = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do table.insert(fields, field) end
  return fields
end

function init(args)
  local share, count = 0, tonumber(os.getenv("BENCH_THREADS"))
  local everything = os.getenv("BENCH_REPEAT") == "1"
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    if everything or share % count == (thread_index or 0) then
      local f = split(line)
      local body = f[3] ~= "" and f[3] or nil
      table.insert(prepared, wrk.format(f[1], f[2], nil, body))
    end
    share = share + 1
  end
  if #prepared == 0 then error("no requests for this thread in " .. os.getenv("BENCH_REQUESTS")) end
end

function request()
  position = position + 1
  if position > #prepared then
    if os.getenv("BENCH_REPEAT") ~= "1" then exhausted = exhausted + 1 end
    position = 1
  end
  return prepared[position]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged, ran_out = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do merged[status] = (merged[status] or 0) + n end
    ran_out = ran_out + thread:get("exhausted")
  end
  local parts = {}
  for status, n in pairs(merged) do table.insert(parts, string.format('"%d": %d', status, n)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "socket_errors": %d, "timeouts": %d, "exhausted": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write, e.timeout, ran_out,
    table.concat(parts, ", ")))
end
