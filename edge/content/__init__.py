"""Signed content packages: guide cards, videos, notices, catalogs and firmware for terminals.

The package format (version 1)
==============================

A package file, ``NAME-VERSION.tfpkg``, is an uncompressed POSIX tar (ustar headers, pax
extended headers for long or non-ASCII paths). Uncompressed, so that the control plane can serve
it with HTTP Range and the agent resume a cut download; the content is mostly compressed media.
Its members, in this order and nothing else:

1. ``manifest.json``: the ``Manifest`` (``manifest.py``) encoded canonically: msgspec JSON with
   sorted keys and no spaces, ``created_at`` in UTC. Fields: ``format`` (1), ``kind``
   (``content`` | ``catalog`` | ``firmware``), ``name`` (``[a-z0-9][a-z0-9._-]{0,63}``),
   ``version`` (>= 1), ``created_at``, ``files`` (``path``, ``size``, ``sha256`` in hex, each),
   ``description``. An unknown field or another format number is refused. At most
   ``MAX_MANIFEST_BYTES``; the files' sizes add up to at most ``MAX_TOTAL_BYTES``.
2. ``manifest.sig``: ``{"key_id": "<16 hex>", "signature": "<base64>"}``, the Ed25519 signature
   of the exact manifest.json bytes. A key id is the first 16 hex characters of the sha256 of
   the raw 32-byte public key. Public keys travel as base64 of those 32 bytes (the agent's
   ``content_keys``); private key files hold base64 of the 32-byte seed and a newline.
3. ``files/<path>`` for every manifest entry, in manifest order: regular files only, each of
   the size the manifest gives. No directories, links, devices or duplicates.

The archive ends with tar's end-of-archive marker (two zero blocks) and zero padding to a whole
10 240-byte record, then the end of the file: so no cut-off download is ever complete.

File paths (``check_path``): relative POSIX paths of non-empty components, none ``.`` or
``..``; no leading ``/``, no backslash, no control or format characters (bidirectional overrides
included), NFC-normalised; at most 255 bytes in UTF-8, 100 bytes a component; unique when
compared case-insensitively, and no file is also another's directory.

Verifying (``open_package``) reads the file once, in order, and trusts no tar header: the
signature is checked over the manifest bytes before they are parsed, every member must have the
manifest's name and size at its position, and every file's sha256 is checked, again while it is
extracted. Every refusal is a ``PackageError`` whose ``reason`` is a ``PackageReason``.

Modules: ``manifest`` (struct, canonical bytes, path rules, errors), ``signing`` (keys and
signatures), ``source`` (the directory to pack), ``tar_reader`` (the strict reader),
``package`` (pack, open, extract).
"""
