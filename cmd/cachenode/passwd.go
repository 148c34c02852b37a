package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/peercache/peercache/auth"
)

// runPasswd is `cachenode passwd [--generate] [--bcrypt [--cost N]]`: it
// prints the users-file hash of a password read from the first line of
// stdin, or of a new random one (--generate) that it prints once to stderr,
// alone on its line, so `cachenode passwd --generate >hash 2>password`
// leaves a file fit for --password-file. The hash is "sha256:..." (for
// long random passwords) or, with --bcrypt, a bcrypt hash (for passwords
// people choose). Exit 2 on a usage error, 1 on bad input.
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cachenode passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cachenode passwd [--generate] [--bcrypt [--cost N]] (the password on standard input, one line)")
		fs.PrintDefaults()
	}
	generate := fs.Bool("generate", false, "generate a random password (printed once to standard error) instead of reading one")
	useBcrypt := fs.Bool("bcrypt", false, "print a bcrypt hash instead of sha256: (for passwords people choose; slower logins)")
	cost := fs.Int("cost", 0, "with --bcrypt: the bcrypt cost, 4 to 31 (default 10)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cachenode passwd: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *cost != 0 && (!*useBcrypt || *cost < 4 || *cost > 31) {
		fmt.Fprintln(stderr, "cachenode passwd: --cost needs --bcrypt and a value from 4 to 31")
		return 2
	}
	var pw string
	if *generate {
		var err error
		if pw, err = auth.GeneratePassword(); err != nil {
			fmt.Fprintf(stderr, "cachenode passwd: %v\n", err)
			return 1
		}
	} else {
		if f, ok := stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				fmt.Fprint(stderr, "cachenode passwd: type the password (it is echoed) and Enter: ")
			}
		}
		line, err := bufio.NewReader(io.LimitReader(stdin, 64<<10)).ReadString('\n')
		if err != nil && err != io.EOF {
			fmt.Fprintf(stderr, "cachenode passwd: reading standard input: %v\n", err)
			return 1
		}
		pw = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if pw == "" {
			fmt.Fprintln(stderr, "cachenode passwd: no password on standard input (give one line, or use --generate)")
			return 1
		}
		if !*useBcrypt && len(pw) < 20 {
			fmt.Fprintln(stderr, "cachenode passwd: warning: a short password can be guessed from its sha256: hash; use --bcrypt, or --generate")
		}
	}
	hash := auth.HashPassword(pw)
	if *useBcrypt {
		var err error
		if hash, err = auth.BcryptHash(pw, *cost); err != nil {
			fmt.Fprintf(stderr, "cachenode passwd: %v\n", err)
			return 1
		}
	}
	if *generate {
		fmt.Fprintln(stderr, pw)
	}
	fmt.Fprintln(stdout, hash)
	return 0
}
