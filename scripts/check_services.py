"""Exit 0 when the PostgreSQL and Redis the tests use answer; otherwise say which does not."""
import os
import sys

failed = []
try:
    import psycopg

    psycopg.connect(os.environ["CBGATE_TEST_POSTGRES_URL"], connect_timeout=3).close()
except Exception as exc:  # any failure means the tests cannot use it
    failed.append(f"PostgreSQL at {os.environ['CBGATE_TEST_POSTGRES_URL']}: {exc}")
try:
    import redis

    redis.Redis.from_url(os.environ["CBGATE_TEST_REDIS_URL"], socket_timeout=3).ping()
except Exception as exc:
    failed.append(f"Redis at {os.environ['CBGATE_TEST_REDIS_URL']}: {exc}")
for line in failed:
    print(f"not reachable: {line}", file=sys.stderr)
sys.exit(1 if failed else 0)
