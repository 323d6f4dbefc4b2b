package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// checkAnswer reports the first field that data, a 2xx answer to be decoded
// into a value of type typ, lacks of those the server always writes: the
// fields of typ (and of the objects it holds) without omitempty, which the
// OpenAPI description lists as required (a server test checks that). A
// null is no value. encoding/json would take `{}` or `null` for an empty
// list of failures, so that a script's gate would pass on a proxy's answer.
// Fields it does not know are a newer server's: no error.
func checkAnswer(data []byte, typ reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return checkValue(v, typ, "")
}

func checkValue(v any, typ reflect.Type, path string) error {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ == reflect.TypeFor[time.Time]():
		return nil // its form is json.Unmarshal's to check
	case typ.Kind() == reflect.Struct:
		object, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s is %s, not a JSON object", orAnswer(path), jsonKindOf(v))
		}
		for _, f := range reflect.VisibleFields(typ) {
			if f.Anonymous || !f.IsExported() {
				continue
			}
			key, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if key == "-" {
				continue
			}
			if key == "" {
				key = f.Name
			}
			field := key
			if path != "" {
				field = path + "." + key
			}
			value, present := object[key]
			if !present || value == nil {
				if !strings.Contains(opts, "omitempty") {
					return fmt.Errorf("the answer lacks %q", field)
				}
				continue
			}
			if err := checkValue(value, f.Type, field); err != nil {
				return err
			}
		}
	case typ.Kind() == reflect.Slice:
		array, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s is %s, not a JSON array", orAnswer(path), jsonKindOf(v))
		}
		for i, elem := range array {
			if err := checkValue(elem, typ.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

func orAnswer(path string) string {
	if path == "" {
		return "the answer"
	}
	return strconv.Quote(path)
}

// jsonKindOf names the JSON type of v, as decoded into an any.
func jsonKindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}
