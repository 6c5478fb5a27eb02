package broker_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/eventstore"
)

// TestPubSubConformance runs watermill's own Pub/Sub suite on the log.
//
// Features, honestly: consumer groups yes; exactly-once delivery no (at
// least once); order is guaranteed per key, and the suite's order test
// checks order per message "type" (the payload), so the publisher keys
// messages by payload here, as watermill-kafka's ordered suite does;
// persistent yes; a new subscriber of the same group does not receive what
// the group consumed (NewSubscriberReceivesOldMessages false). The
// reconnect test needs a restart command and is skipped by the suite.
func TestPubSubConformance(t *testing.T) {
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keyByPayload := func(_ string, msg *message.Message) (string, error) {
		if len(msg.Payload) > 0 {
			return string(msg.Payload), nil
		}
		return msg.UUID, nil
	}
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, err := broker.NewPublisher(store, broker.PublisherConfig{KeyFunc: keyByPayload})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := broker.NewSubscriber(store, broker.SubscriberConfig{ConsumerGroup: group})
		if err != nil {
			t.Fatal(err)
		}
		return pub, sub
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                   true,
			ExactlyOnceDelivery:              false,
			GuaranteedOrder:                  true,
			Persistent:                       true,
			NewSubscriberReceivesOldMessages: false,
			ForceShort:                       testing.Short(),
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "test") },
		newPubSub,
	)
}
