# The worker count gunicorn's docs suggest, as many projects copy it:
# WEB_CONCURRENCY when set (Heroku's convention, which gunicorn also reads
# by itself), else 2 x CPUs + 1, counting the host's CPUs.
import multiprocessing
import os

workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
