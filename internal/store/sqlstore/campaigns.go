package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/webhook"
)

func notFound(id string) error { return errcode.New(errcode.NotFound, "campaign %s not found", id) }

// ownCampaign checks that the workspace has the campaign (errcode.NotFound
// otherwise) without reading its documents, as the calls that only scope
// a query to the workspace need.
func (s *DB) ownCampaign(ctx context.Context, workspace, id string) error {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM campaigns WHERE workspace = $1 AND id = $2`, workspace, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(id)
	}
	return s.wrap("find campaign "+id, err)
}

// CreateCampaign stores c as version 1.
func (s *DB) CreateCampaign(ctx context.Context, c *campaign.Campaign) error {
	now := c.CreatedAt
	if now.IsZero() {
		now = time.Now()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("create campaign", err)
	}
	defer tx.Rollback()
	c.Version, c.CreatedAt, c.UpdatedAt = 1, now.UTC().Truncate(time.Millisecond), now.UTC().Truncate(time.Millisecond)
	if c.Status == "" {
		c.Status = campaign.Draft
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO campaigns (id, workspace, name, status, version, rev, draft, live, created_at, updated_at, updated_by)
		VALUES ($1, $2, $3, $4, 1, $5, $6, NULL, $7, $7, $8)`,
		c.ID, c.Workspace, c.Name, c.Status, c.Rev, string(c.Draft), ms(now), c.UpdatedBy)
	if err != nil {
		return s.wrap("create campaign "+c.ID, err)
	}
	if err := insertVersion(ctx, tx, c.ID, campaign.Version{Version: 1, RevFrom: c.Rev, Rev: c.Rev, At: now,
		By: c.UpdatedBy, Authors: []string{c.UpdatedBy}, Trigger: campaign.TriggerCreate, Doc: c.Draft}); err != nil {
		return s.wrap("create campaign "+c.ID, err)
	}
	if c.Status != campaign.Archived {
		if err := saveSchedule(ctx, tx, c.Workspace, c.ID, c.Draft); err != nil {
			return s.wrap("create campaign "+c.ID, err)
		}
	}
	return s.wrap("create campaign "+c.ID, tx.Commit())
}

const campaignColumns = `id, workspace, name, status, version, rev, epoch, draft, live, created_at, updated_at, updated_by`

type scanner interface{ Scan(...any) error }

func scanCampaign(row scanner) (*campaign.Campaign, error) {
	var c campaign.Campaign
	var draft string
	var live sql.NullString
	var created, updated int64
	if err := row.Scan(&c.ID, &c.Workspace, &c.Name, &c.Status, &c.Version, &c.Rev, &c.Epoch, &draft, &live, &created, &updated, &c.UpdatedBy); err != nil {
		return nil, err
	}
	c.Draft = json.RawMessage(draft)
	if live.Valid {
		c.Live = json.RawMessage(live.String)
	}
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	return &c, nil
}

// Campaign returns one campaign of the workspace.
func (s *DB) Campaign(ctx context.Context, workspace, id string) (*campaign.Campaign, error) {
	c, err := scanCampaign(s.db.QueryRowContext(ctx, `SELECT `+campaignColumns+` FROM campaigns WHERE workspace = $1 AND id = $2`, workspace, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, s.wrap("get campaign "+id, err)
	}
	return c, nil
}

// Campaigns lists the workspace's campaigns, most recently updated first.
func (s *DB) Campaigns(ctx context.Context, workspace string) ([]campaign.Summary, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, status, version, updated_at FROM campaigns WHERE workspace = $1 ORDER BY updated_at DESC, id`, workspace)
	if err != nil {
		return nil, s.wrap("list campaigns", err)
	}
	defer rows.Close()
	list := []campaign.Summary{}
	for rows.Next() {
		var c campaign.Summary
		var updated int64
		if err := rows.Scan(&c.ID, &c.Name, &c.Status, &c.Version, &updated); err != nil {
			return nil, s.wrap("list campaigns", err)
		}
		c.UpdatedAt = fromMS(updated)
		list = append(list, c)
	}
	return list, s.wrap("list campaigns", rows.Err())
}

// Transition applies a lifecycle action with a compare-and-set on the status,
// so two concurrent transitions cannot both succeed from the same state.
func (s *DB) Transition(ctx context.Context, workspace, id string, a campaign.Action) (*campaign.Campaign, error) {
	for attempt := 0; attempt < 5; attempt++ {
		c, err := s.Campaign(ctx, workspace, id)
		if err != nil {
			return nil, err
		}
		next, err := c.Status.Next(a)
		if err != nil {
			return nil, err
		}
		live := c.Live
		if a.CopiesDraftToLive() {
			live = c.Draft
		}
		var liveArg any
		if live != nil {
			liveArg = string(live)
		}
		now := time.Now()
		won, err := s.transition(ctx, c, next, liveArg, now)
		if err != nil {
			return nil, s.wrap("transition campaign "+id, err)
		}
		if won {
			c.Status, c.Live, c.UpdatedAt = next, live, fromMS(ms(now))
			return c, nil
		}
	}
	return nil, errcode.New(errcode.Conflict, "campaign %s changed status concurrently; try again", id)
}

// transition moves c to next if it is still at its status; an archived
// campaign's schedule goes with it, in the same transaction.
func (s *DB) transition(ctx context.Context, c *campaign.Campaign, next campaign.Status, live any, now time.Time) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = $1, live = $2, updated_at = $3
		WHERE workspace = $4 AND id = $5 AND status = $6`, next, live, ms(now), c.Workspace, c.ID, c.Status)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	if next == campaign.Archived {
		if _, err := tx.ExecContext(ctx, `DELETE FROM campaign_schedules WHERE campaign_id = $1`, c.ID); err != nil {
			return false, err
		}
	}
	if next != c.Status {
		if err := enqueueData(ctx, tx, c.Workspace, webhook.CampaignStatusChanged, c.ID,
			webhook.StatusChanged{Campaign: c.ID, From: string(c.Status), To: string(next), At: fromMS(ms(now))}, now); err != nil {
			return false, err
		}
	}
	return true, tx.Commit()
}

// SaveDraft writes a new saved draft when the stored version is still
// d.BaseVersion, the stored rev is below d.Rev, the stored epoch is d.Epoch
// and the campaign is not archived.
func (s *DB) SaveDraft(ctx context.Context, d store.DraftSave) (int64, error) {
	op := fmt.Sprintf("save draft of campaign %s", d.ID)
	at := d.At
	if at.IsZero() {
		at = time.Now()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.wrap(op, err)
	}
	defer tx.Rollback()
	// A stored epoch of "" was never fenced (a campaign saved before epochs
	// were fenced): the first save records its epoch.
	res, err := tx.ExecContext(ctx, `UPDATE campaigns SET draft = $1, version = version + 1, rev = $2, updated_at = $3, updated_by = $4, epoch = $8
		WHERE workspace = $5 AND id = $6 AND version = $7 AND rev < $2 AND (epoch = $8 OR epoch = '') AND status <> $9`,
		string(d.Doc), d.Rev, ms(at), d.By, d.Workspace, d.ID, d.BaseVersion, d.Epoch, campaign.Archived)
	if err != nil {
		return 0, s.wrap(op, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		var version, rev int64
		var epoch string
		var status campaign.Status
		err := tx.QueryRowContext(ctx, `SELECT version, rev, epoch, status FROM campaigns WHERE workspace = $1 AND id = $2`, d.Workspace, d.ID).Scan(&version, &rev, &epoch, &status)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return 0, notFound(d.ID)
		case err != nil:
			return 0, s.wrap(op, err)
		case status == campaign.Archived:
			return 0, fmt.Errorf("%w: %w", store.ErrArchived, errcode.New(errcode.Conflict, "campaign %s is archived and keeps its last saved draft", d.ID))
		case epoch != d.Epoch && epoch != "":
			return 0, fmt.Errorf("%w: %w", store.ErrEpochFenced, errcode.New(errcode.Conflict, "campaign %s: the draft epoch moved (stored %q, this save is of %q)", d.ID, epoch, d.Epoch))
		}
		return 0, errcode.New(errcode.Conflict, "campaign %s: saved draft moved (version %d rev %d, this save expected version %d and writes rev %d)",
			d.ID, version, rev, d.BaseVersion, d.Rev)
	}
	v := d.BaseVersion + 1
	trigger := d.Trigger
	if d.RestoredFrom > 0 {
		trigger = campaign.TriggerRestore
	}
	if err := insertVersion(ctx, tx, d.ID, campaign.Version{Version: v, RevFrom: d.RevFrom, Rev: d.Rev, At: at,
		By: d.By, Authors: d.Authors, Trigger: trigger, RestoredFrom: d.RestoredFrom, Doc: d.Doc}); err != nil {
		return 0, s.wrap(op, err)
	}
	if err := saveSchedule(ctx, tx, d.Workspace, d.ID, d.Doc); err != nil {
		return 0, s.wrap(op, err)
	}
	if err := s.enqueueSaved(ctx, tx, d.Workspace, webhook.Saved{Campaign: d.ID, Version: v, FromVersion: v, RevFrom: d.RevFrom, RevTo: d.Rev,
		Authors: nonNil(d.Authors), Trigger: string(d.Trigger), SavedAt: at}, at); err != nil {
		return 0, s.wrap(op, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, s.wrap(op, err)
	}
	return v, nil
}

// FenceEpoch moves the campaign's draft epoch to next, if it is still from
// at rev (what the caller read before opening next), or is next already.
func (s *DB) FenceEpoch(ctx context.Context, workspace, id, from string, rev int64, next string) error {
	op := fmt.Sprintf("fence draft epoch of campaign %s", id)
	res, err := s.db.ExecContext(ctx, `UPDATE campaigns SET epoch = $1
		WHERE workspace = $2 AND id = $3 AND ((epoch = $4 AND rev = $5) OR epoch = $1)`, next, workspace, id, from, rev)
	if err != nil {
		return s.wrap(op, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		if err := s.ownCampaign(ctx, workspace, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: %w", store.ErrEpochFenced, errcode.New(errcode.Conflict, "campaign %s: the saved draft moved while epoch %s opened", id, next))
	}
	return nil
}

// Publish makes the saved draft of an active campaign live.
func (s *DB) Publish(ctx context.Context, workspace, id, by string) (int64, error) {
	op := "publish campaign " + id
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.wrap(op, err)
	}
	defer tx.Rollback()
	c, err := scanCampaign(tx.QueryRowContext(ctx, `SELECT `+campaignColumns+` FROM campaigns WHERE workspace = $1 AND id = $2`, workspace, id))
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound(id)
	}
	if err != nil {
		return 0, s.wrap(op, err)
	}
	if c.Status != campaign.Active {
		return 0, errcode.New(errcode.Conflict, "only an active campaign can publish its draft; this one is %s", c.Status)
	}
	now := time.Now()
	res, err := tx.ExecContext(ctx, `UPDATE campaigns SET live = draft, version = version + 1, updated_at = $1, updated_by = $2
		WHERE id = $3 AND version = $4 AND status = $5`, ms(now), by, id, c.Version, campaign.Active)
	if err != nil {
		return 0, s.wrap(op, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return 0, errcode.New(errcode.Conflict, "campaign %s changed while publishing; try again", id)
	}
	v := c.Version + 1
	if err := insertVersion(ctx, tx, id, campaign.Version{Version: v, RevFrom: c.Rev, Rev: c.Rev, At: now,
		By: by, Authors: []string{by}, Trigger: campaign.TriggerPublish, Doc: c.Draft}); err != nil {
		return 0, s.wrap(op, err)
	}
	if err := enqueueData(ctx, tx, workspace, webhook.CampaignPublished, id, webhook.Published{Campaign: id, Version: v, By: by, At: fromMS(ms(now))}, now); err != nil {
		return 0, s.wrap(op, err)
	}
	return v, s.wrap(op, tx.Commit())
}

func insertVersion(ctx context.Context, tx *sql.Tx, id string, v campaign.Version) error {
	authors, err := json.Marshal(nonNil(v.Authors))
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO campaign_versions (campaign_id, version, rev_from, rev, doc, at, by, authors, trigger, restored_from)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, id, v.Version, v.RevFrom, v.Rev, string(v.Doc), ms(v.At), v.By, string(authors), v.Trigger, v.RestoredFrom)
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Versions lists a campaign's history, newest first.
func (s *DB) Versions(ctx context.Context, workspace, id string) ([]campaign.Version, error) {
	if err := s.ownCampaign(ctx, workspace, id); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT version, rev_from, rev, at, by, authors, trigger, label, restored_from FROM campaign_versions
		WHERE campaign_id = $1 ORDER BY version DESC`, id)
	if err != nil {
		return nil, s.wrap("list versions of "+id, err)
	}
	defer rows.Close()
	list := []campaign.Version{}
	for rows.Next() {
		v, err := scanVersion(rows, false)
		if err != nil {
			return nil, s.wrap("list versions of "+id, err)
		}
		list = append(list, *v)
	}
	return list, s.wrap("list versions of "+id, rows.Err())
}

// Version returns one history entry with its document.
func (s *DB) Version(ctx context.Context, workspace, id string, version int64) (*campaign.Version, error) {
	if err := s.ownCampaign(ctx, workspace, id); err != nil {
		return nil, err
	}
	v, err := scanVersion(s.db.QueryRowContext(ctx, `SELECT version, rev_from, rev, at, by, authors, trigger, label, restored_from, doc FROM campaign_versions
		WHERE campaign_id = $1 AND version = $2`, id, version), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errcode.New(errcode.NotFound, "campaign %s has no version %d", id, version)
	}
	return v, s.wrap(fmt.Sprintf("get version %d of %s", version, id), err)
}

func scanVersion(row scanner, withDoc bool) (*campaign.Version, error) {
	var v campaign.Version
	var at int64
	var authors, doc string
	dest := []any{&v.Version, &v.RevFrom, &v.Rev, &at, &v.By, &authors, &v.Trigger, &v.Label, &v.RestoredFrom}
	if withDoc {
		dest = append(dest, &doc)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	v.At = fromMS(at)
	if err := json.Unmarshal([]byte(authors), &v.Authors); err != nil {
		return nil, err
	}
	if withDoc {
		v.Doc = json.RawMessage(doc)
	}
	return &v, nil
}

// LabelVersion names one history entry.
func (s *DB) LabelVersion(ctx context.Context, workspace, id string, version int64, label string) error {
	if err := s.ownCampaign(ctx, workspace, id); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE campaign_versions SET label = $1 WHERE campaign_id = $2 AND version = $3`, label, id, version)
	if err != nil {
		return s.wrap(fmt.Sprintf("label version %d of %s", version, id), err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return errcode.New(errcode.NotFound, "campaign %s has no version %d", id, version)
	}
	return nil
}

// SeePerson records a user's display name.
func (s *DB) SeePerson(ctx context.Context, workspace, user, name string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO people (workspace, user_id, name, seen_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (workspace, user_id) DO UPDATE SET name = excluded.name, seen_at = excluded.seen_at`, workspace, user, name, ms(at))
	return s.wrap("record "+user, err)
}

// PeopleNames maps user ids to their names, in one query.
func (s *DB) PeopleNames(ctx context.Context, workspace string, users []string) (map[string]string, error) {
	names := map[string]string{}
	if len(users) == 0 {
		return names, nil
	}
	ids, err := json.Marshal(users)
	if err != nil {
		return nil, err
	}
	q := `SELECT user_id, name FROM people WHERE workspace = $1 AND user_id IN (SELECT value FROM json_each($2))`
	if s.dialect == postgres {
		q = `SELECT user_id, name FROM people WHERE workspace = $1 AND user_id IN (SELECT jsonb_array_elements_text($2::jsonb))`
	}
	rows, err := s.db.QueryContext(ctx, q, workspace, string(ids))
	if err != nil {
		return nil, s.wrap("read names", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, s.wrap("read names", err)
		}
		names[id] = name
	}
	return names, s.wrap("read names", rows.Err())
}
