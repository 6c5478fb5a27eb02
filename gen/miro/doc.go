// Package miro imports an event-storming board from Miro into a model
// (package gen/model).
//
// The input is what Miro's REST API v2 returns for GET
// /v2/boards/{id}/items (and /connectors): JSON objects {"data": [...]},
// possibly several pages one after another or in a JSON array. Items of
// type sticky_note and shape are the stickies: their fill colour
// (style.fillColor, a Miro colour name or a hex value) says what they are
// (Options.Colors, DefaultColors: orange domain event, blue command, violet
// policy, green read model, pale yellow aggregate, yellow actor, pink
// external system, red hotspot, gray message type), and their text
// (data.content, HTML) gives the name on the first line and fields as
// "name: type" on the next ones. Frames are the bounded contexts; a sticky
// belongs to the frame that is its parent or that contains it. Connectors
// (startItem → endItem) give the flow: command → event (emits), aggregate
// — command (owns), event → policy → command, event → read model, actor →
// command, external — command or policy, hotspot — anything.
//
// The lines after a sticky's name may say more: "name: type" is a field
// (types as in the model: string, int, int64, bool, decimal, timestamp,
// enum(a|b), list<T>, a gray sticky's name; a trailing ? makes it
// optional); "POST /v1/orders/{order_id}:pay" is a command's route hint
// ("GET ..." a read model's); "errors: Order not found, Invalid order"
// names a command's errors (not_found for a name ending in NotFound,
// invalid_argument for one starting with Invalid, failed_precondition
// otherwise); "id: order_id" is an aggregate's ID field (by default its
// name and _id); "key: order_id" a read model's key (by default its first
// field); "public" marks an event public (one used by another frame is
// public anyway). Other lines are the element's doc. Names become
// identifiers: "Order placed" is OrderPlaced, "Customer ID" is customer_id.
// An aggregate drawn beside each of its commands is one aggregate; an
// event sticky that no command of its frame emits is a copy of the event
// of that name in another frame.
//
// Nothing is guessed: a sticky of an unknown colour, a sticky in no frame,
// an arrow between two events, a command with two aggregates or none, a
// command that emits nothing... is left out of the model and listed in its
// unresolved section, with the item's id and why, for a person to decide.
// What remains passes model.Validate.
package miro
