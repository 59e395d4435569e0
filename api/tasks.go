package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/resource"
)

// registerTaskRoutes wires /api/v1/upgrade-tasks (SPEC §4.8). A task and its per-device
// records are made by one OTA command, and the task actions are OTA commands too: the FSM
// moves the records and keeps the task's counts.
func (s *Server) registerTaskRoutes() {
	col := collection[*resource.UpgradeTask]{
		kind: resource.UpgradeTasks, path: "/api/v1/upgrade-tasks", tag: "upgrade-tasks", access: Viewer, keptByFSM: true,
		prepare: func(_ echo.Context, t, old *resource.UpgradeTask) resource.Errors {
			if old != nil {
				// The firmware, mode, devices and progress are the campaign's (the FSM keeps
				// them too); copied first so that a body without them validates.
				t.KeepProgress(old)
			}
			return t.Validate()
		},
	}
	sample := &resource.UpgradeTask{}
	s.add(&Route{Method: http.MethodGet, Path: col.path, Access: Viewer, Tag: col.tag,
		Summary: "List upgrade tasks (?firmwareId=, ?productId=, ?mode=, ?state=, ?q=)", Response: List[*resource.UpgradeTask]{}},
		func(c echo.Context) error { return listHandler(s, c, col) })
	s.add(&Route{Method: http.MethodPost, Path: col.path, Access: Admin, Tag: col.tag, Status: http.StatusCreated,
		Summary: "Create an upgrade task; it starts running at once", Request: sample, Response: sample},
		func(c echo.Context) error { return s.createTask(c, col) })
	s.add(&Route{Method: http.MethodGet, Path: col.path + "/:id", Access: Viewer, Tag: col.tag,
		Summary: "Get an upgrade task", Response: sample}, func(c echo.Context) error { return getHandler(s, c, col) })
	s.add(&Route{Method: http.MethodPut, Path: col.path + "/:id", Access: Admin, Tag: col.tag,
		Summary: "Replace the editable fields of an upgrade task (name, timeouts, rollout, abort, description)", Request: sample, Response: sample},
		func(c echo.Context) error { return updateHandler(s, c, col) })
	s.add(&Route{Method: http.MethodDelete, Path: col.path + "/:id", Access: Admin, Tag: col.tag, Status: http.StatusNoContent,
		Summary: "Delete an upgrade task and its device records (refused while it runs)"},
		func(c echo.Context) error { return deleteHandler(s, c, col) })
	s.add(&Route{Method: http.MethodGet, Path: col.path + "/:id/devices", Access: Viewer, Tag: col.tag,
		Summary: "The task's per-device records (?state=, paged)", Response: List[*fsm.OTARecord]{}}, s.taskDevices)
	for _, action := range []struct{ op, summary string }{
		{fsm.OpStop, "Stop the task: waiting devices are canceled; those processing go on"},
		{fsm.OpResume, "Resume the task: canceled devices wait again"},
		{fsm.OpRetry, "Retry a push task's failed devices"},
	} {
		s.add(&Route{Method: http.MethodPost, Path: col.path + "/:id/" + action.op, Access: Admin, Tag: col.tag,
			Summary: action.summary, Response: sample}, func(c echo.Context) error {
			return s.applyTaskOp(c, col, fsm.OTAOp{Op: action.op, TaskID: c.Param("id")}, http.StatusOK)
		})
	}
}

// createTask validates a task and creates it with its device records. What the FSM
// refuses (a missing firmware or device, a device in another running push task) comes
// back as a rule error naming the field.
func (s *Server) createTask(c echo.Context, col collection[*resource.UpgradeTask]) error {
	t := &resource.UpgradeTask{}
	if err := decodeJSON(c, t); err != nil {
		return err
	}
	if errs := t.Validate(); len(errs) > 0 {
		return invalid(errs)
	}
	if t.ID == "" {
		t.ID = newID()
	}
	return s.applyTaskOp(c, col, fsm.OTAOp{Op: fsm.OpCreate, Task: t}, http.StatusCreated)
}

// applyTaskOp proposes one task operation and answers with the task it left.
func (s *Server) applyTaskOp(c echo.Context, col collection[*resource.UpgradeTask], op fsm.OTAOp, status int) error {
	cmd, err := fsm.NewOTA(s.now(), op)
	if err != nil {
		return err
	}
	out, err := s.cfg.Raft.Apply(c.Request().Context(), cmd)
	if err != nil {
		return err
	}
	res := out.(*fsm.OTAResult)
	id := op.TaskID
	if op.Task != nil {
		id = op.Task.ID
	}
	s.log.Info("upgrade task "+op.Op, "task", id, "user", currentUser(c).Username)
	setETag(c, res.Task.Index)
	return c.JSON(status, col.out(c, res.Task))
}

// taskDevices pages a task's device records, in device id order.
func (s *Server) taskDevices(c echo.Context) error {
	id := c.Param("id")
	if _, err := s.cfg.Store.Get(resource.UpgradeTasks, id); err != nil {
		return err
	}
	var errs resource.Errors
	page := intParam(&errs, c.QueryParam("page"), "page", 1, 1, 1<<31)
	size := intParam(&errs, c.QueryParam("pageSize"), "pageSize", 20, 1, MaxPageSize)
	state := c.QueryParam("state")
	if state != "" && !slices.Contains(resource.RecordStates, state) {
		errs.Add("state", "must be one of %s", strings.Join(resource.RecordStates, ", "))
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	records := s.cfg.Store.OTARecords(id, state)
	out := List[*fsm.OTARecord]{Items: []*fsm.OTARecord{}, Total: len(records), Page: page, PageSize: size}
	for i := (page - 1) * size; i < len(records) && i < page*size; i++ {
		out.Items = append(out.Items, records[i])
	}
	return c.JSON(http.StatusOK, out)
}
