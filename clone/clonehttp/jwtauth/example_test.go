package jwtauth_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
)

// An Authenticator verifies the bearer token of a request and returns its subject; the
// clonehttp middleware then resolves the subject to a clone. Every refusal is
// clone.ErrUnauthenticated (HTTP 401) with a message safe to show.
func Example() {
	secret := []byte("an example secret of 32 bytes or more")
	auth, err := jwtauth.NewHMAC("https://issuer.example", "cloneiso", secret, nil)
	if err != nil {
		panic(err)
	}
	sign := func(c jwt.RegisteredClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
		if err != nil {
			panic(err)
		}
		return s
	}
	valid := jwt.RegisteredClaims{Issuer: "https://issuer.example", Audience: jwt.ClaimStrings{"cloneiso"},
		Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}

	r := httptest.NewRequest("GET", "/v1/me", nil)
	r.Header.Set("Authorization", "Bearer "+sign(valid))
	p, err := auth.Authenticate(r)
	fmt.Println("subject:", p.Subject, err)

	other := valid
	other.Audience = jwt.ClaimStrings{"another-service"}
	r.Header.Set("Authorization", "Bearer "+sign(other))
	_, err = auth.Authenticate(r)
	fmt.Println("other audience:", errors.Is(err, clone.ErrUnauthenticated), clone.HTTPStatus(err))

	r.Header.Del("Authorization")
	_, err = auth.Authenticate(r)
	fmt.Println("no token:", errors.Is(err, clone.ErrUnauthenticated), clone.HTTPStatus(err))
	// Output:
	// subject: alice <nil>
	// other audience: true 401
	// no token: true 401
}
