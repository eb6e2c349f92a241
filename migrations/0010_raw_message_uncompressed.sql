-- Raw MIME is kept as received, like an .eml file on disk: out of line, not compressed.
-- pglz compression of the raw message was the largest single cost of ingest (1.6-2.0 ms of
-- PostgreSQL time per typical message, most of it on base64 attachments that pglz then
-- stores uncompressed anyway because they do not shrink by a quarter). Rows already
-- stored keep their compression; only new rows are affected. See docs/ingest.md.
ALTER TABLE "raw_message" ALTER COLUMN "data" SET STORAGE EXTERNAL;
