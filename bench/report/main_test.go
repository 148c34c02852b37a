package main

import (
	"strings"
	"testing"
)

func TestSplice(t *testing.T) {
	doc := "# Benchmarks\n\nintro\n\n## Ring\n\nring figures\n"
	once := splice(doc, "## Run\nA\n")
	if !strings.HasPrefix(once, "# Benchmarks\n\nintro\n\n"+beginMarker+"\n## Run\nA\n"+endMarker+"\n\n## Ring\n") {
		t.Fatalf("first splice:\n%s", once)
	}
	twice := splice(once, "## Run\nB\n")
	if strings.Contains(twice, "\nA\n") || !strings.Contains(twice, "\nB\n") || strings.Count(twice, beginMarker) != 1 || !strings.HasSuffix(twice, "## Ring\n\nring figures\n") {
		t.Fatalf("second splice:\n%s", twice)
	}
	if got := splice("", "x\n"); got != "\n"+beginMarker+"\nx\n"+endMarker+"\n" {
		t.Fatalf("empty doc: %q", got)
	}
}
