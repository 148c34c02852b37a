package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// HashPassword returns the users-file hash of pw: "sha256:" and the 64 hex
// digits of its SHA-256. An unsalted fast hash is right only for long random
// passwords such as [GeneratePassword]'s; for passwords people choose use
// [BcryptHash].
func HashPassword(pw string) string {
	sum := sha256.Sum256([]byte(pw))
	return sha256Prefix + hex.EncodeToString(sum[:])
}

// BcryptHash returns a bcrypt hash of pw for a users file, at cost (0:
// bcrypt.DefaultCost, 10, about 50 ms a verification). bcrypt reads at most
// 72 bytes: a longer pw is an error wrapping bcrypt.ErrPasswordTooLong.
func BcryptHash(pw string, cost int) (string, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("auth: bcrypt: %w", err)
	}
	return string(h), nil
}

// GeneratePassword returns a new random password: 32 bytes from
// crypto/rand in unpadded base64url (43 characters).
func GeneratePassword() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: generating a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
