module gitops-mesh.local/ldap-server

go 1.24.0

require (
	github.com/lor00x/goldap v0.0.0-20180618054307-a546dffdd1a3
	github.com/vjeantet/ldapserver v1.0.1
)
