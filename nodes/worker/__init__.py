"""A worker: stores chunks, serves them against tokens, reports to the metadata servers.

``main.run`` starts it; ``service`` is its rpyc door, ``store`` its chunk files (under
DATA/chunks/ and DATA/backups/), ``node`` its identity and the master's commands,
``reporter`` the link to each metadata server, ``scrubber`` the background re-reading.
"""
