-- Attachments are kept as received, out of line and not compressed, as raw_message is since
-- 0010. pglz tried every attachment (most are images, PDFs and zip-based documents that do
-- not shrink, so it stored them uncompressed after the work), and a compressed value cannot
-- be read in parts: every download of a compressible attachment (a 25 MB CSV) was read and
-- decompressed whole, once per agent who opened it (+142 MB of memory for one download in a
-- probe, session 16). Rows already stored keep their compression; see docs/ingest.md.
ALTER TABLE "attachment" ALTER COLUMN "data" SET STORAGE EXTERNAL;
