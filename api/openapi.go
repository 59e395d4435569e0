package api

import (
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/auth"
)

// Version is the API document's version.
const Version = "1.0.0"

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// openAPIPath turns echo's /x/:id into OpenAPI's /x/{id}.
func openAPIPath(p string) string { return echoParam.ReplaceAllString(p, "{$1}") }

func (s *Server) registerOpenAPIRoute() {
	var once sync.Once
	var doc *openapi3.T
	var docErr error
	s.add(&Route{Method: http.MethodGet, Path: "/api/v1/openapi.json", Access: Viewer, Tag: "meta", Raw: true, Local: true,
		Summary: "This OpenAPI 3 document"}, func(c echo.Context) error {
		once.Do(func() { doc, docErr = s.OpenAPI() })
		if docErr != nil {
			return docErr
		}
		return c.JSON(http.StatusOK, doc)
	})
}

// OpenAPI builds the OpenAPI 3 document from the route table.
func (s *Server) OpenAPI() (*openapi3.T, error) {
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info:    &openapi3.Info{Title: "linkops", Version: Version, Description: "Operations plane of an IoT platform: every route of one node's REST API."},
		Paths:   openapi3.NewPaths(),
		Components: &openapi3.Components{
			SecuritySchemes: openapi3.SecuritySchemes{
				"bearer": &openapi3.SecuritySchemeRef{Value: openapi3.NewJWTSecurityScheme()},
			},
			Schemas: openapi3.Schemas{},
		},
	}
	problemSchema, err := schemaFor(Problem{})
	if err != nil {
		return nil, err
	}
	doc.Components.Schemas["Problem"] = problemSchema
	problemRef := &openapi3.SchemaRef{Ref: "#/components/schemas/Problem"}

	for _, r := range s.routes {
		path := openAPIPath(r.Path)
		item := doc.Paths.Value(path)
		if item == nil {
			item = &openapi3.PathItem{}
			doc.Paths.Set(path, item)
		}
		op := openapi3.NewOperation()
		op.Summary = r.Summary
		op.Tags = []string{r.Tag}
		op.OperationID = r.Method + " " + path
		for _, m := range echoParam.FindAllStringSubmatch(r.Path, -1) {
			op.AddParameter(openapi3.NewPathParameter(m[1]).WithSchema(openapi3.NewStringSchema()))
		}
		switch r.Access {
		case Public:
		case Internal:
			op.Description = "Node-to-node call, signed with the cluster key in the " + auth.InternalHeader + " header; user tokens are not accepted."
		default:
			op.Security = &openapi3.SecurityRequirements{{"bearer": []string{}}}
		}
		if r.Request != nil {
			ref, err := schemaFor(r.Request)
			if err != nil {
				return nil, err
			}
			body := openapi3.NewRequestBody().WithRequired(true).WithJSONSchemaRef(ref)
			if len(r.RequestContentTypes) > 0 {
				body.WithContent(openapi3.NewContentWithSchemaRef(ref, r.RequestContentTypes))
			}
			op.RequestBody = &openapi3.RequestBodyRef{Value: body}
		}
		ok := openapi3.NewResponse().WithDescription(http.StatusText(r.Status))
		if r.Response != nil {
			ref, err := schemaFor(r.Response)
			if err != nil {
				return nil, err
			}
			ok.WithJSONSchemaRef(ref)
		}
		op.AddResponse(r.Status, ok)
		op.Responses.Set("default", &openapi3.ResponseRef{Value: openapi3.NewResponse().
			WithDescription("RFC 9457 problem").WithContent(openapi3.NewContentWithSchemaRef(problemRef, []string{"application/problem+json"}))})
		item.SetOperation(r.Method, op)
	}
	return doc, nil
}

// schemaFor describes a Go value's JSON; secret fields are marked writeOnly and internal
// ones left out.
func schemaFor(v any) (*openapi3.SchemaRef, error) {
	return openapi3gen.NewSchemaRefForValue(v, nil, openapi3gen.SchemaCustomizer(
		func(_ string, _ reflect.Type, tag reflect.StructTag, schema *openapi3.Schema) error {
			if internal, _ := strconv.ParseBool(tag.Get("internal")); internal {
				return &openapi3gen.ExcludeSchemaSentinel{}
			}
			if secret, _ := strconv.ParseBool(tag.Get("secret")); secret {
				schema.WriteOnly = true
			}
			if f := tag.Get("format"); f != "" {
				schema.Format = f
			}
			return nil
		}))
}
