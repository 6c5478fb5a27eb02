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
// Nothing is guessed: a sticky of an unknown colour, a sticky in no frame,
// an arrow between two events, a command with two aggregates or none, a
// command that emits nothing... is left out of the model and listed in its
// unresolved section, with the item's id and why, for a person to decide.
// What remains passes model.Validate.
package miro
