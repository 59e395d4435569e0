package resource

import (
	"regexp"
	"time"
)

// Roles (SPEC §3.1): admin may do everything, viewer may only read.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// MinPasswordLen is the shortest password a user may be given.
const MinPasswordLen = 8

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// User is an operator account. Passwords are kept only as bcrypt hashes.
type User struct {
	Meta
	Username string `json:"username"`
	// Password is write-only plain text; the API hashes it into PasswordHash before the
	// user is stored, and it is never kept.
	Password string `json:"password,omitempty" secret:"true"`
	// PasswordHash is internal: stored and replicated, never shown or documented.
	PasswordHash string `json:"passwordHash,omitempty" secret:"true" internal:"true"`
	Role         string `json:"role"`
	// PasswordSetAt lets a token issued before a password change be refused.
	PasswordSetAt time.Time `json:"passwordSetAt"`
}

// DisplayName is the username, for search and sorting.
func (u *User) DisplayName() string { return u.Username }

// Users is the user collection; usernames are unique.
var Users = Register(&Kind{
	Name:    "users",
	New:     func() Object { return new(User) },
	Filters: map[string]func(Object) string{"role": func(o Object) string { return o.(*User).Role }},
	Unique:  map[string]func(Object) string{"username": func(o Object) string { return o.(*User).Username }},
})

// Validate checks the user's fields. A new user needs a password; an update may omit it to
// keep the current one.
func (u *User) Validate(isNew bool) Errors {
	var errs Errors
	ValidateID(&errs, u.ID)
	if !usernamePattern.MatchString(u.Username) {
		errs.Add("username", "must be 1-64 characters of letters, digits, '_', '.', '@' or '-'")
	}
	switch u.Role {
	case RoleAdmin, RoleViewer:
	case "":
		errs.Add("role", "is required: admin or viewer")
	default:
		errs.Add("role", "must be admin or viewer")
	}
	if isNew && u.Password == "" {
		errs.Add("password", "is required")
	} else if u.Password != "" && len(u.Password) < MinPasswordLen {
		errs.Add("password", "must be at least %d characters", MinPasswordLen)
	} else if len(u.Password) > 72 {
		errs.Add("password", "must be at most 72 bytes (bcrypt's limit)")
	}
	return errs
}
