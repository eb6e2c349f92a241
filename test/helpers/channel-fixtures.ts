import type { Db } from "../../src/db/client.js";
import {
  autoReplyTemplate,
  brandedTemplate,
  businessCalendar,
  signature,
  skill,
  slaPolicy,
} from "../../src/db/schema/index.js";

let seq = 0;
const gid = (type: string, id: string) => Buffer.from(`${type}:${id}`).toString("base64");

/**
 * Rows of the types other issues own (calendars, SLA policies, …), written straight to the
 * database, returned as global IDs ready to pass to the API.
 */
export async function createReferencedObjects(db: Db, tenantId: string) {
  seq += 1;
  const [cal] = await db
    .insert(businessCalendar)
    .values({ tenantId, name: `Office ${seq}`, timeZone: "Europe/Berlin" })
    .returning();
  const [sla] = await db
    .insert(slaPolicy)
    .values({ tenantId, name: `SLA ${seq}`, firstResponseMinutes: 60 })
    .returning();
  const [sig] = await db
    .insert(signature)
    .values({ tenantId, name: `Sig ${seq}`, text: "Regards" })
    .returning();
  const [tpl] = await db
    .insert(brandedTemplate)
    .values({ tenantId, name: `Brand ${seq}`, html: "<html>{{content}}</html>" })
    .returning();
  const [auto] = await db
    .insert(autoReplyTemplate)
    .values({ tenantId, name: `Auto ${seq}`, text: "We got your mail." })
    .returning();
  const [sk] = await db
    .insert(skill)
    .values({ tenantId, name: `skill-${seq}` })
    .returning();
  return {
    calendarId: gid("BusinessCalendar", cal!.id),
    slaPolicyId: gid("SlaPolicy", sla!.id),
    signatureId: gid("Signature", sig!.id),
    brandedTemplateId: gid("BrandedTemplate", tpl!.id),
    autoReplyTemplateId: gid("AutoReplyTemplate", auto!.id),
    skillId: gid("Skill", sk!.id),
  };
}

export const globalId = gid;
