"""Importing libraries exported by other services (Google Takeout first) into camroll.

``archive`` reads the parts (zip, tgz, folder) as streams; ``sidecar`` parses Takeout's JSON; ``takeout``
matches media with sidecars and albums (pure); ``run`` hashes, checks and uploads; ``cli`` is the command.
"""
