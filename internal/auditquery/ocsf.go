package auditquery

import (
	"encoding/json"
	"strconv"
	"strings"
)

// OCSF API Activity (class 6003, category 6 Application Activity), schema
// version OCSFVersion. The mapping of a row is documented in the README's
// "Operating the audit trail" section; keep the two in step.
const (
	OCSFVersion      = "1.3.0"
	ocsfClassUID     = 6003
	ocsfCategoryUID  = 6
	ocsfActivityID   = 99 // Other: a tool call is none of create, read, update, delete
	ocsfActivityName = "execute_tool"
)

// OCSFEvent is an API Activity event.
type OCSFEvent struct {
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	TypeUID      int    `json:"type_uid"`
	TypeName     string `json:"type_name"`
	SeverityID   int    `json:"severity_id"`
	Severity     string `json:"severity"`
	Time         int64  `json:"time"`
	StartTime    int64  `json:"start_time"`
	EndTime      int64  `json:"end_time"`
	Duration     int64  `json:"duration"`
	StatusID     int    `json:"status_id"`
	Status       string `json:"status"`
	StatusCode   string `json:"status_code"`
	StatusDetail string `json:"status_detail,omitempty"`

	Actor       ocsfActor       `json:"actor"`
	API         ocsfAPI         `json:"api"`
	SrcEndpoint ocsfEndpoint    `json:"src_endpoint"`
	DstEndpoint *ocsfEndpoint   `json:"dst_endpoint,omitempty"`
	Resources   []ocsfResource  `json:"resources,omitempty"`
	Metadata    ocsfMetadata    `json:"metadata"`
	Unmapped    json.RawMessage `json:"unmapped,omitempty"`
}

type ocsfActor struct {
	User    ocsfUser     `json:"user"`
	Session *ocsfSession `json:"session,omitempty"`
}

type ocsfUser struct {
	UID    string      `json:"uid"`
	Name   string      `json:"name"`
	Groups []ocsfGroup `json:"groups,omitempty"`
}

type ocsfGroup struct {
	Name string `json:"name"`
}

type ocsfSession struct {
	UID string `json:"uid"`
}

type ocsfAPI struct {
	Operation string       `json:"operation"`
	Service   ocsfService  `json:"service"`
	Request   ocsfRequest  `json:"request"`
	Response  ocsfResponse `json:"response"`
}

type ocsfService struct {
	Name string `json:"name"`
}

type ocsfRequest struct {
	UID  string          `json:"uid"`
	Data json.RawMessage `json:"data,omitempty"`
}

type ocsfResponse struct {
	Code    *int   `json:"code,omitempty"`
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

type ocsfEndpoint struct {
	IP      string `json:"ip,omitempty"`
	Port    int    `json:"port,omitempty"`
	SvcName string `json:"svc_name,omitempty"`
}

type ocsfResource struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type ocsfMetadata struct {
	Version        string      `json:"version"`
	Product        ocsfProduct `json:"product"`
	UID            string      `json:"uid"`
	CorrelationUID string      `json:"correlation_uid,omitempty"`
	LoggedTime     int64       `json:"logged_time"`
	LogName        string      `json:"log_name"`
	Labels         []string    `json:"labels,omitempty"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version,omitempty"`
}

// OCSF maps r to an OCSF API Activity event. product names the producing
// version of otelaudit, table the audit table (metadata.log_name).
func (r *Row) OCSF(productVersion, table string) OCSFEvent {
	ms := r.Timestamp.UnixMilli()
	ev := OCSFEvent{
		ActivityID: ocsfActivityID, ActivityName: ocsfActivityName,
		CategoryUID: ocsfCategoryUID, CategoryName: "Application Activity",
		ClassUID: ocsfClassUID, ClassName: "API Activity",
		TypeUID: ocsfClassUID*100 + ocsfActivityID, TypeName: "API Activity: Other",
		Time: ms, StartTime: ms, EndTime: ms + r.LatencyMS, Duration: r.LatencyMS,
		StatusCode: r.Status,
		Actor:      ocsfActor{User: ocsfUser{UID: r.Subject, Name: r.Subject}},
		API: ocsfAPI{
			Operation: r.Tool,
			Service:   ocsfService{Name: r.Backend},
			Request:   ocsfRequest{UID: r.RequestID, Data: r.Args},
		},
		Metadata: ocsfMetadata{
			Version:    OCSFVersion,
			Product:    ocsfProduct{Name: "otelaudit", VendorName: "otelaudit", Version: productVersion},
			UID:        r.RequestID,
			LoggedTime: r.CreatedAt.UnixMilli(),
			LogName:    table,
		},
		Unmapped: r.Attributes,
	}
	if r.Status == "ok" {
		ev.StatusID, ev.Status = 1, "Success"
		ev.SeverityID, ev.Severity = 1, "Informational"
	} else {
		ev.StatusID, ev.Status = 2, "Failure"
		ev.SeverityID, ev.Severity = 2, "Low"
		if r.Status == "denied" {
			ev.SeverityID, ev.Severity = 3, "Medium"
		}
	}
	for _, role := range strings.Split(r.Role, ",") {
		if role = strings.TrimSpace(role); role != "" {
			ev.Actor.User.Groups = append(ev.Actor.User.Groups, ocsfGroup{Name: role})
		}
	}
	if s := deref(r.SessionID); s != "" {
		ev.Actor.Session = &ocsfSession{UID: s}
	}
	ev.SrcEndpoint.IP = deref(r.ClientAddress)
	if p, err := strconv.Atoi(deref(r.ClientPort)); err == nil {
		ev.SrcEndpoint.Port = p
	}
	if r.ServiceName != nil && *r.ServiceName != "" {
		ev.DstEndpoint = &ocsfEndpoint{SvcName: *r.ServiceName}
	}
	if r.Status != "ok" {
		ev.API.Response.Error = deref(r.ErrorType)
		if ev.API.Response.Error == "" {
			ev.API.Response.Error = r.Status
		}
		if c, err := strconv.Atoi(ev.API.Response.Error); err == nil {
			ev.API.Response.Code = &c
		}
		ev.API.Response.Message = deref(r.ErrorMessage)
		ev.StatusDetail = deref(r.ErrorMessage)
	}
	if r.TraceID != nil {
		ev.Metadata.CorrelationUID = *r.TraceID
	}
	if r.Backend != "" {
		ev.Resources = []ocsfResource{{Name: r.Backend, Type: "mcp.backend"}}
	}
	return ev
}
