CREATE SEQUENCE tag_move_id_seq;

CREATE TABLE cas_blobs (
	cas_id VARCHAR(71) NOT NULL, 
	size BIGINT NOT NULL, 
	media_type VARCHAR(255) NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_cas_blobs PRIMARY KEY (cas_id)
);

CREATE TABLE journal_marks (
	name VARCHAR(16) NOT NULL, 
	record_id UUID NOT NULL, 
	folded_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_journal_marks PRIMARY KEY (name)
);

CREATE TABLE schema_version (
	version INTEGER NOT NULL, 
	applied_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_schema_version PRIMARY KEY (version)
);

CREATE TABLE artifacts (
	id UUID NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	version_hash VARCHAR(71) NOT NULL, 
	cas_id VARCHAR(71) NOT NULL, 
	parent_id UUID, 
	merged_id UUID, 
	name VARCHAR(255) NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	created_by VARCHAR(255), 
	metadata TEXT NOT NULL, 
	CONSTRAINT pk_artifacts PRIMARY KEY (id), 
	CONSTRAINT uq_artifacts_version_hash UNIQUE (version_hash), 
	CONSTRAINT fk_artifacts_cas_id_cas_blobs FOREIGN KEY(cas_id) REFERENCES cas_blobs (cas_id), 
	CONSTRAINT fk_artifacts_parent_id_artifacts FOREIGN KEY(parent_id) REFERENCES artifacts (id), 
	CONSTRAINT fk_artifacts_merged_id_artifacts FOREIGN KEY(merged_id) REFERENCES artifacts (id)
);

CREATE TABLE run_io (
	run_id VARCHAR(200) NOT NULL, 
	direction VARCHAR(8) NOT NULL, 
	node VARCHAR(1000) NOT NULL, 
	partition_key VARCHAR(1000) NOT NULL, 
	cas_id VARCHAR(71) NOT NULL, 
	media_type VARCHAR(255) NOT NULL, 
	size BIGINT NOT NULL, 
	recorded_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_run_io PRIMARY KEY (run_id, direction, node, partition_key), 
	CONSTRAINT fk_run_io_cas_id_cas_blobs FOREIGN KEY(cas_id) REFERENCES cas_blobs (cas_id)
);

CREATE TABLE blob_refs (
	artifact_id UUID NOT NULL, 
	cas_id VARCHAR(71) NOT NULL, 
	CONSTRAINT pk_blob_refs PRIMARY KEY (artifact_id, cas_id), 
	CONSTRAINT fk_blob_refs_artifact_id_artifacts FOREIGN KEY(artifact_id) REFERENCES artifacts (id), 
	CONSTRAINT fk_blob_refs_cas_id_cas_blobs FOREIGN KEY(cas_id) REFERENCES cas_blobs (cas_id)
);

CREATE TABLE runs (
	run_id VARCHAR(200) NOT NULL, 
	snapshot_id UUID NOT NULL, 
	base_id UUID, 
	tag VARCHAR(200) NOT NULL, 
	job_name VARCHAR(255), 
	status VARCHAR(16) NOT NULL, 
	started_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	finished_at TIMESTAMP WITHOUT TIME ZONE, 
	publish VARCHAR(8) NOT NULL, 
	head_id UUID, 
	head_revision INTEGER NOT NULL, 
	outcome TEXT, 
	CONSTRAINT pk_runs PRIMARY KEY (run_id), 
	CONSTRAINT fk_runs_snapshot_id_artifacts FOREIGN KEY(snapshot_id) REFERENCES artifacts (id), 
	CONSTRAINT fk_runs_base_id_artifacts FOREIGN KEY(base_id) REFERENCES artifacts (id), 
	CONSTRAINT fk_runs_head_id_artifacts FOREIGN KEY(head_id) REFERENCES artifacts (id)
);

CREATE TABLE tag_moves (
	id BIGINT NOT NULL, 
	tag_name VARCHAR(200) NOT NULL, 
	from_target_id UUID, 
	to_target_id UUID, 
	revision INTEGER NOT NULL, 
	moved_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	moved_by VARCHAR(255), 
	reason TEXT, 
	run_id VARCHAR(200), 
	CONSTRAINT pk_tag_moves PRIMARY KEY (id), 
	CONSTRAINT uq_tag_moves_tag_name_revision UNIQUE (tag_name, revision), 
	CONSTRAINT fk_tag_moves_from_target_id_artifacts FOREIGN KEY(from_target_id) REFERENCES artifacts (id), 
	CONSTRAINT fk_tag_moves_to_target_id_artifacts FOREIGN KEY(to_target_id) REFERENCES artifacts (id)
);

CREATE TABLE tags (
	name VARCHAR(200) NOT NULL, 
	target_id UUID, 
	target_kind VARCHAR(16), 
	revision INTEGER NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	updated_by VARCHAR(255), 
	CONSTRAINT pk_tags PRIMARY KEY (name), 
	CONSTRAINT fk_tags_target_id_artifacts FOREIGN KEY(target_id) REFERENCES artifacts (id)
);
