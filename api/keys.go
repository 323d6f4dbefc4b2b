package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// shape is what checkKeys knows of a JSON value: the keys of an object, each
// with the shape of its value, or the shape of an array's elements. A nil
// shape is any value.
type shape struct {
	fields map[string]*shape
	elem   *shape
}

var (
	failureShape = &shape{fields: fieldsOf(reflect.TypeFor[Failure](), nil)}
	// failuresShape is the array of failed nodes, also when it arrives as a
	// string that holds it.
	failuresShape = &shape{elem: failureShape}
	resultShape   = &shape{fields: fieldsOf(reflect.TypeFor[Result](), map[string]*shape{"failures": failuresShape})}
)

// fieldsOf lists the JSON keys of a struct, with the given shapes for some.
func fieldsOf(t reflect.Type, shapes map[string]*shape) map[string]*shape {
	fields := map[string]*shape{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = shapes[name]
		}
	}
	return fields
}

// checkKeys refuses what encoding/json would otherwise decide silently,
// where two readers of one body could disagree: a key that appears twice in
// one object (encoding/json takes the last, other parsers the first), and a
// key that names a field only when case is ignored ("Namespace"). data must
// be valid JSON.
func checkKeys(data []byte, sh *shape, path string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walk(dec, sh, path)
}

func walk(dec *json.Decoder, sh *shape, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return &FieldError{Field: path, Message: "malformed JSON: " + err.Error()}
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return &FieldError{Field: path, Message: "malformed JSON: " + err.Error()}
			}
			key := keyTok.(string)
			field := joinPath(path, key)
			if seen[key] {
				return &FieldError{Field: field, Message: "appears twice in one object; send each key once"}
			}
			seen[key] = true
			var child *shape
			if sh != nil && sh.fields != nil {
				var known bool
				if child, known = sh.fields[key]; !known {
					if want := foldedMatch(sh.fields, key); want != "" {
						return &FieldError{Field: field, Message: fmt.Sprintf("unknown key; keys are case-sensitive: did you mean %q?", want)}
					}
				}
			}
			if err := walk(dec, child, field); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
	case json.Delim('['):
		var elem *shape
		if sh != nil {
			elem = sh.elem
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
	}
	if err != nil {
		return &FieldError{Field: path, Message: "malformed JSON: " + err.Error()}
	}
	return nil
}

// foldedMatch returns the field that key names when case is ignored (as
// encoding/json would match it), or "".
func foldedMatch(fields map[string]*shape, key string) string {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return name
		}
	}
	return ""
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
