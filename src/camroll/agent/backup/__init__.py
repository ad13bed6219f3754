"""One backup pass as a pipeline: scan, file rules, hash, check with the server, upload.

``run.run_backup`` is the entry point; ``coordinator`` drives the stages (each a ``stage.BoundedStage``
feeding a worker pool) on the calling thread; ``scanner``, ``hasher``, ``filepolicy``, ``uploader`` and
``tus`` are the work the stages do; ``throttle`` and ``retry`` pace it."""
