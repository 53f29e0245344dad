// Command ldap-server is the local stack's directory for SeaweedFS's AssumeRoleWithLDAPIdentity (a Bucket's
// spec.sts with provider ldap): a few users under ou=people, simple binds and equality searches, nothing else.
// It provisions tests only; the product never runs it. Users come from a 0600 file of "name:password" lines
// so no password is on a command line.
package main

import (
	"bufio"
	"crypto/subtle"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lor00x/goldap/message"
	ldap "github.com/vjeantet/ldapserver"
)

type directory struct {
	base  string
	users map[string]string // uid -> password
}

func (d *directory) dn(uid string) string { return "uid=" + uid + ",ou=people," + d.base }

// uidOf is the uid of a DN under ou=people, or "" for any other DN.
func (d *directory) uidOf(dn string) string {
	suffix := ",ou=people," + strings.ToLower(d.base)
	normal := strings.ReplaceAll(dn, ", ", ",")
	lower := strings.ToLower(normal)
	if len(lower) != len(normal) || !strings.HasPrefix(lower, "uid=") || !strings.HasSuffix(lower, suffix) {
		return ""
	}
	return normal[len("uid=") : len(normal)-len(suffix)]
}

func (d *directory) bind(w ldap.ResponseWriter, m *ldap.Message) {
	r := m.GetBindRequest()
	name, password := string(r.Name()), string(r.AuthenticationSimple())
	if name == "" && password == "" { // anonymous: may search, as the directory is public to the S3 gateway
		w.Write(ldap.NewBindResponse(ldap.LDAPResultSuccess))
		return
	}
	want, ok := d.users[d.uidOf(name)]
	if ok && subtle.ConstantTimeCompare([]byte(want), []byte(password)) == 1 {
		w.Write(ldap.NewBindResponse(ldap.LDAPResultSuccess))
		return
	}
	res := ldap.NewBindResponse(ldap.LDAPResultInvalidCredentials)
	res.SetDiagnosticMessage("invalid credentials")
	w.Write(res)
}

// search answers "(uid=NAME)" (or "(cn=NAME)") under the base with the user's entry; any other filter finds nothing.
func (d *directory) search(w ldap.ResponseWriter, m *ldap.Message) {
	r := m.GetSearchRequest()
	if eq, ok := r.Filter().(message.FilterEqualityMatch); ok {
		attr := strings.ToLower(string(eq.AttributeDesc()))
		value := string(eq.AssertionValue())
		if _, known := d.users[value]; known && (attr == "uid" || attr == "cn") {
			e := ldap.NewSearchResultEntry(d.dn(value))
			e.AddAttribute("objectClass", "inetOrgPerson")
			e.AddAttribute("uid", message.AttributeValue(value))
			e.AddAttribute("cn", message.AttributeValue(value))
			e.AddAttribute("mail", message.AttributeValue(value+"@gitops-mesh.local"))
			w.Write(e)
		}
	}
	w.Write(ldap.NewSearchResultDoneResponse(ldap.LDAPResultSuccess))
}

func readUsers(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, password, ok := strings.Cut(line, ":")
		if !ok || name == "" || password == "" {
			return nil, fmt.Errorf("%s: a line is not name:password", path)
		}
		users[name] = password
	}
	return users, s.Err()
}

func main() {
	addr := flag.String("addr", "127.0.0.1:20389", "listen address")
	base := flag.String("base-dn", "dc=gitops-mesh,dc=local", "base DN; users are uid=NAME,ou=people,BASE")
	usersFile := flag.String("users", "", "file of name:password lines")
	verbose := flag.Bool("v", false, "log every connection (the library logs each one in five lines)")
	flag.Parse()
	users, err := readUsers(*usersFile)
	if err != nil {
		log.Fatalf("users: %v", err)
	}
	d := &directory{base: *base, users: users}
	ldap.Logger = log.New(io.Discard, "", 0)
	if *verbose {
		ldap.Logger = log.New(os.Stderr, "[ldap] ", log.LstdFlags)
	}
	server := ldap.NewServer()
	server.ReadTimeout = 5 * time.Minute
	server.WriteTimeout = 30 * time.Second
	routes := ldap.NewRouteMux()
	routes.Bind(d.bind)
	routes.Search(d.search)
	server.Handle(routes)
	done := make(chan error, 1)
	go func() { done <- server.ListenAndServe(*addr) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-done:
		log.Fatalf("serve: %v", err)
	case <-sig:
		server.Stop()
	}
}
