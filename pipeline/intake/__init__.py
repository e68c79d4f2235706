"""Intake: writing records for payload an archivist already has, so nobody types YAML by hand.

``authoring`` writes one record for files or a folder (``strongroom records new``);
``metadata_csv`` writes one record per row of an Archivematica-style ``metadata.csv``
(``strongroom records import``).  Both describe the payload with ``payload`` (digests, stated
formats) and publish each record durably, never replacing one.
"""
