"""Many videos at once: finding them (folders, globs, list files), running each video's job in
a per-video shard project on a pool of local worker processes or on a Ray cluster, retrying a
lost worker, and combining each finished shard into the user's project (the combining itself
is :mod:`ptrack.store.combine`, the only code besides the store that could touch the files)."""
