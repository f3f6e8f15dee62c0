-- Fleet's agent (fleetd): its orbit process enrolls beside osqueryd with a node key of its own, and both land
-- in one host row (the osquery host of the same hardware UUID, whichever enrolls first). Stored as a SHA-256
-- hash like the osquery node key; NULL until orbit enrolls.
ALTER TABLE hosts ADD COLUMN orbit_node_key_hash TEXT NULL;
CREATE UNIQUE INDEX hosts_orbit_node_key ON hosts(orbit_node_key_hash);
