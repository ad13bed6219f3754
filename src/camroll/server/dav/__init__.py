"""The WebDAV door at ``/dav/``: phone auto-upload apps and desktop tools back files up over WebDAV.

``door.py`` is the ASGI entry (bounds, hostile paths, HTTP Basic with an app password = a device token,
the login back-off); behind it wsgidav (through a2wsgi) speaks the protocol over ``provider.py``, whose
resources are a device's tree (``tree.py``: asset file rows plus MKCOL'd folders).  A PUT becomes an
asset through the same services as a tus upload (``ingest.py``: ``uploads.create`` + ``receive.receive``);
Nextcloud chunking v2 appends chunks to one upload (``chunks.py``)."""
