"""What camroll knows about photos and videos, shared by the agent and the server (no I/O beyond
reading the file and running ffprobe/ffmpeg; no database, no network).

- ``types``: supported types, recognised from bytes.
- ``metadata.extract(path) -> MediaInfo``: capture time and its source, size, camera, place, video
  properties, Live Photo identifier, Motion Photo video; never raises for a bad file.
- ``thumbs.make_grid_and_preview`` / ``make_thumbnail``: WebP thumbnails; raise ``errors.MediaError``.
- ``live.pair_live_photos``: still + video pairs sharing a content identifier.
"""
