"""Pure content work: sniffing, images, EXIF, documents, moderation, OCR and language.

Nothing here knows of Temporal, storage or the database: functions take paths,
bytes and images and return plain values; a verdict on the content is a
`CorruptContent` or `TooLarge` (see `errors`). The media activities spool and
stream the objects and call in here.
"""
