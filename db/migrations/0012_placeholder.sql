-- 0012: a placeholder on branch b23 only, for the other engineer's migration 0012 (issue 22):
-- migrations are numbered without gaps, and this branch's is 0013. Dropped at the merge (with
-- its line in db/meson.build), where the real 0012 takes its place.
SELECT 1;
