package board

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/muninn-es/muninn/gen/internal/legend"
)

var savePNG = flag.String("png", "", "also write the rendered shop board to this PNG file (e.g. ../../docs/img/board.png)")

// chromium returns the path of a headless Chromium, or skips the test
// when there is none (CI installs it: .ci/chromium.sh).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: the board is not rendered (apt-get install chromium)")
	return ""
}

// TestShopBoardRenders renders the shop's board with headless Chromium
// and checks the picture as a person would first look: the size of the
// board, mostly white paper, and the stickies' colours present in
// proportion.
func TestShopBoardRenders(t *testing.T) {
	bin := chromium(t)
	s := layout(shop(t))
	var svg bytes.Buffer
	bw := bufio.NewWriter(&svg)
	s.write(bw)
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "board.svg")
	if err := os.WriteFile(in, svg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	w, h := int(math.Ceil(s.w)), int(math.Ceil(s.h))
	out := filepath.Join(dir, "board.png")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // only so that a stuck browser fails the test instead of hanging it
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--force-device-scale-factor=1",
		"--screenshot="+out, fmt.Sprintf("--window-size=%d,%d", w, h), "file://"+in)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("the picture is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
	// Every sticky's fill is found at its centre-left (beside the text).
	for _, b := range s.boxes {
		x, y := int(b.x+4), int(b.y+b.h/2)
		want := hexColor(legend.Of(b.kind).Fill)
		if got := img.At(x, y); !near(got, want) {
			t.Errorf("the %s sticky %v is not drawn: at (%d,%d) the picture has %v, want %v", b.kind, b.lines, x, y, got, want)
			break
		}
	}
	// Some dark pixels (text and arrows) in every sticky's middle.
	for _, b := range s.boxes {
		dark := 0
		for y := int(b.y + padY); y < int(b.y+b.h-padY); y++ {
			for x := int(b.x + padX); x < int(b.x+b.w-padX); x++ {
				if r, g, bl, _ := img.At(x, y).RGBA(); (r+g+bl)/3 < 0x5000 {
					dark++
				}
			}
		}
		if dark < 30 && b.kind != "hotspot" {
			t.Errorf("the %s sticky %v has no text in the picture (%d dark pixels)", b.kind, b.lines, dark)
			break
		}
	}
	if *savePNG != "" {
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*savePNG, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func hexColor(s string) color.RGBA {
	var r, g, b uint8
	fmt.Sscanf(s, "#%02x%02x%02x", &r, &g, &b)
	return color.RGBA{r, g, b, 255}
}

func near(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	d := func(a uint32, b uint8) float64 { return float64(int(a>>8) - int(b)) }
	return math.Abs(d(r, want.R))+math.Abs(d(g, want.G))+math.Abs(d(b, want.B)) < 40
}
