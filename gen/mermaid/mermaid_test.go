package mermaid

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/gen/model"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestShopFlowchart(t *testing.T) {
	data, err := os.ReadFile("../model/testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Parse("shop.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	const golden = "testdata/shop.mmd"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if out != string(want) {
		t.Errorf("the flowchart differs from %s (go test -update rewrites it):\n%s", golden, out)
	}

	// Structure: a flowchart, balanced subgraphs, every edge between
	// declared nodes, a class for every kind used.
	if !strings.HasPrefix(out, "flowchart LR\n") {
		t.Error("not a flowchart LR")
	}
	if o, e := strings.Count(out, "subgraph "), strings.Count(out, "\n    end\n")+strings.Count(out, "\n  end\n"); o != e {
		t.Errorf("%d subgraphs, %d ends", o, e)
	}
	for _, edge := range []string{
		"c_Order_PlaceOrder --> e_Order_OrderPlaced",
		"u_Order_Customer --> c_Order_PlaceOrder",
		"e_Order_OrderPlaced --> s_Checkout",
		"s_Checkout --> c_Payment_RequestPayment",
		"e_Payment_PaymentCaptured --> r_Payment_Revenue",
		"x_Payment_PaymentProvider -.- c_Payment_RequestPayment",
		"s_Checkout -.->|after 15m0s| c_Order_CancelOrder",
	} {
		if !strings.Contains(out, "  "+edge+"\n") {
			t.Errorf("no edge %q", edge)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && (f[1] == "-->" || f[1] == "-.-") {
			for _, n := range []string{f[0], f[2]} {
				if !strings.Contains(out, n+"[") && !strings.Contains(out, n+"{{") && !strings.Contains(out, n+"([") {
					t.Errorf("edge %q names undeclared node %s", line, n)
				}
			}
		}
	}
}

// TestPolicyCondition draws the example shop's model, whose policies send
// their commands only for some payment methods: the arrow from the event
// to each policy carries its if.
func TestPolicyCondition(t *testing.T) {
	data, err := os.ReadFile("../../examples/shop/eventmodel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Parse("eventmodel.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	for _, edge := range []string{
		`e_Payment_Requested -->|"if method = card"| p_Payment_CaptureCards`,
		`e_Payment_Requested -->|"if method = card_declined"| p_Payment_DeclineCards`,
		`p_Payment_CaptureCards --> c_Payment_Capture`,
	} {
		if !strings.Contains(buf.String(), "  "+edge+"\n") {
			t.Errorf("no edge %s:\n%s", edge, buf.String())
		}
	}
}
