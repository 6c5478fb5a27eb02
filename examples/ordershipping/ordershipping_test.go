package ordershipping_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// proc is a started service: its stdout lines arrive on lines.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// expect reads lines until one starts with prefix, and returns it.
func (p *proc) expect(t *testing.T, prefix string, timeout <-chan time.Time) string {
	t.Helper()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited before printing %q", p.cmd.Path, prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			t.Fatalf("%s: no line %q in time", p.cmd.Path, prefix)
		}
	}
}

// stop sends SIGTERM and checks a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range p.lines {
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("%s: %v", p.cmd.Path, err)
	}
}

// TestOrderShipping builds the two services, starts an embedded JetStream
// server and both processes, places orders (at start and over HTTP) and
// waits until the order service reports every order shipped.
func TestOrderShipping(t *testing.T) {
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/order", "./cmd/shipping")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer ns.Shutdown()

	timeout := time.After(2 * time.Minute)
	data := t.TempDir()
	shipping := start(t, filepath.Join(bin, "shipping"), "-dir", filepath.Join(data, "shipping"), "-nats", ns.ClientURL())
	shipping.expect(t, "shipping service ready", timeout)
	order := start(t, filepath.Join(bin, "order"), "-dir", filepath.Join(data, "order"), "-nats", ns.ClientURL(),
		"-http", "127.0.0.1:0", "-place", "3")
	base := strings.TrimPrefix(order.expect(t, "listening on ", timeout), "listening on ")

	want := map[string]bool{}
	for range 3 {
		id := strings.Fields(order.expect(t, "order ", timeout))[1]
		want[id] = true
	}
	for i := range 2 {
		resp, err := http.Post(base+"/orders", "application/json", strings.NewReader(fmt.Sprintf(`{"item":"http-%d"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		var o struct{ ID, Status string }
		err = json.NewDecoder(resp.Body).Decode(&o)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated || o.Status != "placed" {
			t.Fatalf("POST /orders: %d %+v %v", resp.StatusCode, o, err)
		}
		want[o.ID] = true
	}
	resp, err := http.Post(base+"/orders", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /orders without item: %d, want 400", resp.StatusCode)
	}

	shipped := map[string]bool{}
	for len(shipped) < len(want) {
		line := order.expect(t, "order ", timeout)
		if f := strings.Fields(line); len(f) == 3 && f[2] == "shipped" {
			if !want[f[1]] {
				t.Fatalf("unknown order shipped: %s", line)
			}
			shipped[f[1]] = true
		}
	}

	resp, err = http.Get(base + "/orders")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var list []struct{ ID, Status string }
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&list); err != nil {
		t.Fatalf("GET /orders: %v: %s", err, body)
	}
	if len(list) != len(want) {
		t.Errorf("GET /orders: %d orders, want %d", len(list), len(want))
	}
	for _, o := range list {
		if o.Status != "shipped" {
			t.Errorf("order %s is %s", o.ID, o.Status)
		}
	}
	order.stop(t)
	shipping.stop(t)
}
