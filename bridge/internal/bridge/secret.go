package bridge

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrEmptySecret: the file holds no secret (callers may treat it as none).
var ErrEmptySecret = errors.New("empty")

// ReadSecret reads a one-line secret from path, or from the systemd
// credential NAME when path is "credential:NAME" ($CREDENTIALS_DIRECTORY,
// LoadCredential=). Only the first line counts, trimmed; an empty secret
// is an error.
func ReadSecret(path string) (string, error) {
	if name, ok := strings.CutPrefix(path, "credential:"); ok {
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return "", fmt.Errorf("%s: $CREDENTIALS_DIRECTORY is not set (not started by systemd with LoadCredential=?)", path)
		}
		if name == "" || strings.ContainsRune(name, '/') || name == "." || name == ".." {
			return "", fmt.Errorf("%s: not a credential name", path)
		}
		path = filepath.Join(dir, name)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("%s: %w", path, ErrEmptySecret)
	}
	return line, nil
}
