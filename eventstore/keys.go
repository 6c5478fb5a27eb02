package eventstore

import "encoding/binary"

// Key layout. Every key starts with a one-byte kind. Topic IDs are assigned
// at creation and never reused; variable-length parts carry a uvarint length
// prefix so that no key is a prefix of another kind's.
//
//	0x00 "format"                                -> store format version
//	0x00 "nexttopic"                             -> next topic ID
//	0x01 topic name                              -> topic metadata (JSON)
//	0x02 topicID partition                       -> partition metadata
//	0x03 topicID partition offset                -> record (the partition log)
//	0x04 topicID len(key) key version            -> record (the stream index)
//	0x05 topicID len(key) key                    -> head version of the stream
//	0x06 len(group) group topicID partition      -> committed offset
//	0x07 user key                                -> state value (state.go)
//
// A record's bytes are stored twice, under its log key and its stream key, so
// that partition scans and stream reads are both sequential reads; see
// BENCHMARKS.md for the measurement behind this choice.
const (
	kindFormat    byte = 0x00
	kindTopic     byte = 0x01
	kindPartition byte = 0x02
	kindLog       byte = 0x03
	kindStream    byte = 0x04
	kindHead      byte = 0x05
	kindGroup     byte = 0x06
	kindState     byte = 0x07
)

var (
	formatKey = []byte{kindFormat, 'f', 'o', 'r', 'm', 'a', 't'}
	// nextTopicKey holds the next topic ID, so that the ID of a deleted
	// topic is never given to another.
	nextTopicKey = []byte{kindFormat, 'n', 'e', 'x', 't', 't', 'o', 'p', 'i', 'c'}
)

func topicKey(name string) []byte {
	return append([]byte{kindTopic}, name...)
}

func appendPartitionKey(dst []byte, topicID uint32, partition int) []byte {
	dst = append(dst, kindPartition)
	dst = binary.BigEndian.AppendUint32(dst, topicID)
	return binary.BigEndian.AppendUint32(dst, uint32(partition))
}

// appendLogPrefix appends the prefix shared by all records of a partition.
func appendLogPrefix(dst []byte, topicID uint32, partition int) []byte {
	dst = append(dst, kindLog)
	dst = binary.BigEndian.AppendUint32(dst, topicID)
	return binary.BigEndian.AppendUint32(dst, uint32(partition))
}

func appendLogKey(dst []byte, topicID uint32, partition int, offset int64) []byte {
	dst = appendLogPrefix(dst, topicID, partition)
	return binary.BigEndian.AppendUint64(dst, uint64(offset))
}

// appendStreamPrefix appends the prefix shared by all records of a stream.
func appendStreamPrefix(dst []byte, topicID uint32, key string) []byte {
	dst = append(dst, kindStream)
	dst = binary.BigEndian.AppendUint32(dst, topicID)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

func appendStreamKey(dst []byte, topicID uint32, key string, version uint64) []byte {
	dst = appendStreamPrefix(dst, topicID, key)
	return binary.BigEndian.AppendUint64(dst, version)
}

func appendHeadKey(dst []byte, topicID uint32, key string) []byte {
	dst = append(dst, kindHead)
	dst = binary.BigEndian.AppendUint32(dst, topicID)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

func appendGroupPrefix(dst []byte, group string) []byte {
	dst = append(dst, kindGroup)
	dst = binary.AppendUvarint(dst, uint64(len(group)))
	return append(dst, group...)
}

func appendGroupKey(dst []byte, group string, topicID uint32, partition int) []byte {
	dst = appendGroupPrefix(dst, group)
	dst = binary.BigEndian.AppendUint32(dst, topicID)
	return binary.BigEndian.AppendUint32(dst, uint32(partition))
}
