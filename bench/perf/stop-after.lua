-- wrk script for cg-tls.sh (run with -t1): wrk ends once REQUESTS responses
-- have arrived, so every callgrind run covers the same amount of work.
-- thread:stop() only halts the event loop while wrk's main thread sleeps out
-- -d, so the script also sends wrk the SIGINT that ends that sleep; wrk then
-- reports as usual. `sh -c`'s parent ($PPID) is wrk itself; the kill waits in
-- the background because system() ignores SIGINT in wrk until sh has exited.
-- Requests still in flight (at most one per connection) finish unseen; wrk's
-- count is the divisor.
local limit = tonumber(os.getenv("REQUESTS") or "10000")
local seen = 0

function response(status, headers, body)
  seen = seen + 1
  if seen == limit then
    wrk.thread:stop()
    os.execute("(sleep 0.2; kill -INT $PPID) &")
  end
end
