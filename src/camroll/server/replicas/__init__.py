"""Replicas: every original copied to other places (S3 buckets, folders, rclone remotes), checked by scrub,
and used to repair the primary store.  See docs/REPLICAS.md."""
