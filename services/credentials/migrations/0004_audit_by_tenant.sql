-- ListAudit pages a tenant's audit log newest first by id (uuid v7, time-ordered).
CREATE INDEX credential_audit_by_tenant ON credential_audit (tenant, id);
