-- Listings by owner come back in image-ID order: this index serves both the
-- filter and the order, so SQLite does not sort thousands of rows through a
-- temporary file (measured: 7 ms -> 3 ms for 2,000 images).
CREATE INDEX images_region_owner_image ON images (region, owner_id, image_id);
