package main

import (
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/tenant"
)

// devTokenTTL is the lifetime of a development token.
const devTokenTTL = 12 * time.Hour

// devToken mints an HS256 token for ?sub=NAME (development mode only: anyone can be
// anyone). In production an identity provider issues the tokens.
func (a *App) devToken(w http.ResponseWriter, r *http.Request) {
	sub := r.URL.Query().Get("sub")
	if err := tenant.ValidateSubject(sub); err != nil {
		clonehttp.WriteError(w, r, err)
		return
	}
	tok, err := a.mintToken(sub, devTokenTTL)
	if err != nil {
		clonehttp.WriteError(w, r, err)
		return
	}
	a.log.WarnContext(r.Context(), "development token issued", "sub", sub)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(tok))
}

// mintToken signs a token for subject with the development secret.
func (a *App) mintToken(subject string, ttl time.Duration) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Issuer: a.cfg.JWTIssuer, Audience: jwt.ClaimStrings{a.cfg.JWTAudience}, Subject: subject,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}).SignedString(a.devSecret)
}
