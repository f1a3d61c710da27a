#!/bin/bash
PB=${PB:-/tmp/pb}
for n in 1 2; do [ -f $PB/b$n.pid ] && kill -TERM "$(cat $PB/b$n.pid)" 2>/dev/null; rm -f $PB/b$n.pid; done
