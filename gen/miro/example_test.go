package miro_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/muninn-es/muninn/gen/miro"
	"github.com/muninn-es/muninn/gen/model"
)

func ExampleImport() {
	// A frame (the context), a blue command, a pale yellow aggregate, an
	// orange event, an arrow from the command to the event, and a
	// sticky of a colour the legend does not know.
	board := `{"data": [
	  {"id": "1", "type": "frame", "data": {"title": "Sales"}},
	  {"id": "2", "type": "sticky_note", "parent": {"id": "1"}, "style": {"fillColor": "light_blue"},
	   "data": {"content": "<p>Sell item</p><p>price: decimal</p><p>POST /v1/sales</p>"}},
	  {"id": "3", "type": "sticky_note", "parent": {"id": "1"}, "style": {"fillColor": "light_yellow"},
	   "data": {"content": "<p>Sale</p>"}},
	  {"id": "4", "type": "sticky_note", "parent": {"id": "1"}, "style": {"fillColor": "orange"},
	   "data": {"content": "<p>Item sold</p><p>price: decimal</p>"}},
	  {"id": "5", "type": "sticky_note", "parent": {"id": "1"}, "style": {"fillColor": "#202020"},
	   "data": {"content": "<p>Discount?</p>"}}
	]}
	{"data": [{"id": "6", "type": "connector", "startItem": {"id": "2"}, "endItem": {"id": "4"}}]}`
	m, err := miro.Import(strings.NewReader(board), miro.Options{Name: "shop"})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := model.Marshal(m)
	os.Stdout.Write(out)
	// Output:
	// name: shop
	// contexts:
	//   - name: Sales
	//     aggregates:
	//       - name: Sale
	//         id: sale_id
	//         commands:
	//           - name: SellItem
	//             fields:
	//               price: decimal
	//             emits:
	//               - ItemSold
	//             http: POST /v1/sales
	//         events:
	//           - name: ItemSold
	//             fields:
	//               price: decimal
	// unresolved:
	//   - item: "5"
	//     text: Discount?
	//     reason: 'unknown colour #202020 (nearest: #8fd14f, read_model, too far): what it stands for is unknown (add the colour to the colour map)'
}
