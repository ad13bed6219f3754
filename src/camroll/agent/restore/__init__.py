"""``camroll restore``: the library's originals written back to a folder, byte for byte and resumable.

- ``names``: where each device path lands under DEST, made safe (pure);
- ``journal``: what earlier runs finished (a small SQLite file under DEST/.camroll-restore);
- ``run``: listing, download with resume, verification, placement without following links.
"""
