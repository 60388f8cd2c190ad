-- wrk script for bench/run.py: POST one fixed chat body, check every reply, print one result line.
-- Usage: wrk -t1 -cN -dS --latency -s chat.lua URL -- BODY_FILE [API_KEY] [MUST_CONTAIN]
-- A reply counts as bad when its status is not 200 or it lacks MUST_CONTAIN (e.g. `data: [DONE]`).
-- `events` counts `data: {` lines (not [DONE]), so a run shows how many SSE events each reply carried.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local body = file:read("*a")
  file:close()
  local headers = { ["Content-Type"] = "application/json" }
  if args[2] and args[2] ~= "" then
    headers["Authorization"] = "Bearer " .. args[2]
  end
  must_contain = args[3] ~= "" and args[3] or nil
  bad, events, replies = 0, 0, 0
  prepared = wrk.format("POST", nil, headers, body)  -- built once: request() must be cheap
end

function request()
  return prepared
end

function response(status, headers, body)
  replies = replies + 1
  if status ~= 200 or (must_contain and not string.find(body, must_contain, 1, true)) then
    bad = bad + 1
  end
  local start = 1
  while true do
    local at = string.find(body, "data: {", start, true)
    if not at then break end
    events = events + 1
    start = at + 6
  end
end

function done(summary, latency, requests)
  local total_bad, total_events, total_replies = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_bad = total_bad + thread:get("bad")
    total_events = total_events + thread:get("events")
    total_replies = total_replies + thread:get("replies")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "socket_errors": %d, "status_errors": %d, "bad": %d, ' ..
    '"replies": %d, "events": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect + e.read + e.write + e.timeout,
    e.status, total_bad, total_replies, total_events))
end
